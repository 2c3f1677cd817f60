"""Business rules, one module (and one Router) per feature. Handlers see typed events and a Context only."""

from __future__ import annotations

from bot.dispatcher import Router
from bot.periodic import Job


def all_routers() -> list[Router]:
    """Every feature router, in the order their handlers run for the same event."""
    from handlers.growth import follow, friends, groups
    from handlers.interactions import keywords, kf, referral
    from handlers.orders import purchases
    from handlers.sop import drips, group_sop

    # referral first: it must see an arrival before friends/follow create the customer row ("genuinely new")
    return [
        referral.router, friends.router, follow.router, groups.router, group_sop.router, purchases.router,
        drips.router, keywords.router, kf.router,
    ]  # fmt: skip


def all_jobs() -> list[Job]:
    """Periodic business jobs (run by ``bot.periodic`` in every replica; each is idempotent)."""
    from handlers.interactions import referral

    return [Job("referral_release", 600.0, referral.release_due)]
