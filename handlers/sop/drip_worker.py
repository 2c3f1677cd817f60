"""The due-step poll: per-customer drip steps are rows with ``due_at``, claimed and run here.

No scheduler job per customer (docs/operations.md, "Scheduling"): a frequent poll reads the partial index
``ix_drip_steps_due_pending`` (pending rows by ``due_at``) and claims a batch:

* PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` then ``claimed_until = now + lease`` in one short
  transaction, so several replicas split the due rows without waiting on each other;
* SQLite: one conditional ``UPDATE … WHERE id IN (due, unclaimed) RETURNING id`` (one writer at a time).

Each claimed row then runs in its own transaction that starts with a conditional UPDATE of the row
(``state = 'pending' AND claimed_until = <our claim>``): on PostgreSQL that holds the row lock, on
SQLite the write lock, so the step's outcome, its ledger row and its outbox row commit together and
exactly once. A worker that died mid-row leaves the claim to expire; another replica takes it over.

What a step *does* (budget, delivery, completion) is business logic: the runner is injected
(``handlers.sop.drip_steps.run_step``); it leaves the row ``pending`` only to wait (``claimed_until`` in the
future) or to defer (``due_at`` moved).

Besides the poll, :meth:`DripWorker.wake` runs it at once: a transaction that enrolled a customer in a
drip with a step due now asks for it (:func:`wake_drips_after_commit`), and its runner calls it after the commit.

The poll interval is simulated time: on a sped-up clock (``siyu-bot demo --speed``) the loop waits
:func:`bot.sim_clock.real_seconds` of it, so 5 s at 3600× is a poll every 50 ms, not every 5 simulated hours.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.background import Background, Loop
from bot.clock import Clock
from bot.config import Settings
from bot.context import Context, Runtime
from bot.parts import Part
from bot.sim_clock import real_seconds
from handlers.sop.tables import DripStepRun

log = logging.getLogger(__name__)

StepRunner = Callable[[DripStepRun, Context], Awaitable[None]]
OutboxNotify = Callable[[list[tuple[int, int]]], None]


DRIP_WORKER = Part["DripWorker"]("sop.drip_worker")


def wake_drips_after_commit(ctx: Context) -> None:
    """A drip step written in ``ctx``'s transaction is due now: run the poll right after the commit."""
    worker = ctx.services.parts.get(DRIP_WORKER) if ctx.services is not None else None
    if worker is not None:
        ctx.after_commit(worker.wake)


class DripWorker:
    """Claims due drip steps and runs each in one transaction. ``run_due`` is the unit tests call."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        services: Runtime,
        run_step: StepRunner,
        on_outbox: OutboxNotify,
        *,
        poll_seconds: float = 5.0,
        lease_seconds: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._services = services
        self._run_step = run_step
        self._on_outbox = on_outbox
        self._poll = poll_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._background = Background("drips")
        self._loop: Loop | None = None

    @property
    def poll_seconds(self) -> float:
        """How long the loop waits for a wake-up before it polls anyway (clock seconds; see ``real_seconds``)."""
        return self._poll

    def start(self) -> None:
        # waits first: start-up work (migrations, catch-up) settles, and runs driven by tests stay in control
        self._loop = self._background.every("poll", lambda: real_seconds(self._clock, self._poll), self._run_all)

    async def stop(self) -> None:
        """Stop polling; a row in flight finishes its transaction (or its claim simply expires)."""
        await self._background.stop()
        self._loop = None

    def wake(self) -> None:
        """Poll now: the clock jumped, or a committed enrolment has a step due already (a ``0m`` step goes
        out at once, not at the next poll). Called after the commit, so the claim sees the rows."""
        if self._loop is not None:
            self._loop.wake()

    async def _run_all(self) -> None:
        while await self.run_due() > 0:
            pass

    async def run_due(self, limit: int = 100) -> int:
        """Claim up to ``limit`` due steps and run them; returns how many were claimed."""
        now = self._clock.now()
        claim = now + self._lease
        ids = await self._claim(now, claim, limit)
        for step_id in ids:
            try:
                await self._run_one(step_id, claim)
            except Exception:
                log.exception("drip step failed", extra={"drip_step_id": step_id})
        return len(ids)

    @staticmethod
    def _due(now: datetime) -> Any:
        return and_(
            DripStepRun.state == "pending",
            DripStepRun.due_at <= now,
            or_(DripStepRun.claimed_until.is_(None), DripStepRun.claimed_until < now),
        )

    async def _claim(self, now: datetime, claim: datetime, limit: int) -> list[int]:
        due = select(DripStepRun.id).where(self._due(now)).order_by(DripStepRun.due_at).limit(limit)
        async with self._sessions() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                ids = list((await session.scalars(due.with_for_update(skip_locked=True))).all())
                if ids:
                    await session.execute(
                        update(DripStepRun).where(DripStepRun.id.in_(ids)).values(claimed_until=claim)
                    )
                return ids
            claimed = await session.scalars(
                update(DripStepRun)
                .where(DripStepRun.id.in_(due.scalar_subquery()), self._due(now))
                .values(claimed_until=claim)
                .returning(DripStepRun.id)
            )
            return sorted(claimed.all())

    async def _run_one(self, step_id: int, claim: datetime) -> None:
        async with self._sessions() as session, session.begin():
            mine = await session.execute(
                update(DripStepRun)
                .where(DripStepRun.id == step_id, DripStepRun.state == "pending", DripStepRun.claimed_until == claim)
                .values(claimed_until=claim)
                .execution_options(synchronize_session=False)
            )
            if mine.rowcount != 1:  # type: ignore[attr-defined]
                return  # finished or re-claimed by another worker after our lease ran out
            step = await session.get(DripStepRun, step_id, populate_existing=True)
            assert step is not None
            ctx = Context(session, self._settings, self._clock, self._rng, None, self._services)
            await self._run_step(step, ctx)
            if step.state != "pending" or step.claimed_until == claim:
                step.claimed_until = None
            calls = await ctx.flush_outbox()
        if calls:
            self._on_outbox(calls)
        ctx.committed()  # the step's completion may have started a drip (``then.start``) whose first step is due
