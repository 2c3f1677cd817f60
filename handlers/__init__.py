"""Business rules, one module (and one Router) per feature. Handlers see typed events and a Context only."""

from __future__ import annotations

from bot.dispatcher import Router


def all_routers() -> list[Router]:
    """Every feature router, in the order their handlers run for the same event."""
    from handlers import follow, friends, groups

    return [friends.router, follow.router, groups.router]
