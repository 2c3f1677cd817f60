"""Run a handler-level function outside a callback (H5 request, periodic job) the way the dispatcher does.

The dispatcher gives handlers a :class:`~bot.context.Context` inside the transaction of a receipt; an
H5 tap or a release job has no receipt. :func:`run_action` opens one transaction, hands the function
the same kind of Context (clock, rng, settings, services, outbox), commits, and pokes the outbox with
whatever the function queued — so business state and platform calls still commit together.

Outbox keys: without a receipt, non-global keys are prefixed with the action's ``scope`` (e.g.
``h5:checkin:<customer>:<request id>``), so two actions queuing the same key never collide.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.context import Context

T = TypeVar("T")


async def run_action(services: Any, fn: Callable[[Context], Awaitable[T]], *, scope: str | None = None) -> T:
    """``fn(ctx)`` in one transaction; queued platform calls are sent after the commit.

    ``services`` is the app's :class:`~bot.app.Services` (sessions, settings, clock, rng, outbox).
    Raises whatever ``fn`` raises, after rolling back.
    """
    if services.sessions is None:
        raise RuntimeError("the database is not ready")
    label = scope or f"action:{secrets.token_hex(8)}"
    async with services.sessions() as session, session.begin():
        ctx = Context(session, services.settings, services.clock, services.rng, None, services, scope=label)
        result = await fn(ctx)
        new_calls = await ctx.flush_outbox()
    if new_calls and services.outbox is not None:
        services.outbox.notify(new_calls)
    return result
