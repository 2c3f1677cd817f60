"""Run a handler-level function outside a callback (H5 request, periodic job, CLI) the way the dispatcher does.

The dispatcher gives handlers a :class:`~bot.context.Context` inside the transaction of a receipt; an
H5 tap or a release job has no receipt. :func:`run_action` opens one transaction, hands the function
the same kind of Context (clock, rng, settings, services, outbox), commits, runs the context's
after-commit hooks and pokes the outbox with whatever the function queued — so business state and
platform calls still commit together.

Outbox keys: without a receipt, non-global keys are prefixed with the action's ``scope`` (e.g.
``h5:checkin:<customer>:<request id>``), so two actions queuing the same key never collide.

SQLite runs one writer at a time: every decision that races (limits, seq, stock, one check-in a day) is
made by a unique constraint, a conditional write or under the lock, never by an earlier read. Should a
lock wait still run out ("database is locked"), the whole transaction is retried from the start (it
rolled back, so nothing is done twice).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from bot.context import Context, Runtime

T = TypeVar("T")
ATTEMPTS = 3


async def run_action(
    services: Runtime, fn: Callable[[Context], Awaitable[T]], *, scope: str | None = None, attempts: int = ATTEMPTS
) -> T:
    """``fn(ctx)`` in one transaction; queued platform calls are sent after the commit.

    Raises whatever ``fn`` raises, after rolling back.
    """
    label = scope or f"action:{secrets.token_hex(8)}"
    for attempt in range(1, attempts + 1):
        try:
            async with services.sessions() as session, session.begin():
                ctx = Context(session, services.settings, services.clock, services.rng, None, services, scope=label)
                result = await fn(ctx)
                new_calls = await ctx.flush_outbox()
        except OperationalError as exc:
            if "database is locked" not in str(exc) or attempt == attempts:
                raise
            await asyncio.sleep(0.05 * attempt)
            continue
        services.notify_outbox(new_calls)
        ctx.committed()
        return result
    raise AssertionError("unreachable")
