"""Running an interaction in its own transaction, outside a callback (H5 pages, tests, benchmarks).

Callbacks already give handlers a transaction (the dispatcher's receipt transaction). An H5 request has
none: ``await in_transaction(services, lambda ctx: draw(ctx, customer_id, "unbox", "h5"))`` opens one,
builds a :class:`~bot.context.Context` without a receipt, commits, and pokes the outbox for any platform
calls the interaction queued (tags of a milestone reward …).

SQLite runs one writer at a time: writers queue on the lock (``busy_timeout``), and every decision that
races (limits, seq, stock, coupon codes, one check-in a day) is made by a unique constraint, a conditional
write or under the lock, never by an earlier read. Should a wait still run out ("database is locked"),
the whole transaction is retried from the start (it rolled back, so nothing is done twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError

from bot.context import Context

T = TypeVar("T")
ATTEMPTS = 3


async def in_transaction(services: Any, fn: Callable[[Context], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """``fn(ctx)`` in a fresh transaction of ``services.sessions`` (``bot.app.Services``), committed."""
    for attempt in range(1, attempts + 1):
        try:
            async with services.sessions() as session, session.begin():
                ctx = Context(session, services.settings, services.clock, services.rng, None, services)
                result = await fn(ctx)
                calls = await ctx.flush_outbox()
        except OperationalError as exc:
            if "database is locked" not in str(exc) or attempt == attempts:
                raise
            await asyncio.sleep(0.05 * attempt)
            continue
        if calls and getattr(services, "outbox", None) is not None:
            services.outbox.notify(calls)
        return result
    raise AssertionError("unreachable")
