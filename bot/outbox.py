"""Outbox worker: performs queued platform calls once, in priority order, within their deadlines.

States: ``pending → sending → sent | failed | expired``. A row is claimed with a conditional
UPDATE (``pending → sending`` with a lease), so several replicas never send the same row. Rows
whose lease ran out while ``sending`` (the process died mid-call) are re-sent only when the API is
idempotent on the platform side; others go to a reconciler, or fail loudly — never a blind re-send.
Welcome sends (priority 0) are poked straight from the dispatcher after commit; the poll loop is
the safety net and the path for scheduled rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.config import OutboxConfig
from bot.db.models import OutboxCall
from bot.metrics import Metrics
from bot.platform.errors import PlatformError, Retryable, TransportError, WelcomeBeingDistributed

log = logging.getLogger(__name__)
_T: Table = OutboxCall.__table__  # type: ignore[assignment]


class PlatformCaller(Protocol):
    async def call(
        self,
        api: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        method: str = "POST",
    ) -> dict[str, Any]: ...


# APIs that create something on the platform each time they are called: after a crash mid-call we
# cannot know whether the platform acted, so they need a reconciler instead of a re-send.
NOT_IDEMPOTENT = {"externalcontact/add_msg_template", "message/send", "appchat/send", "kf/send_msg"}

Reconciler = Callable[[OutboxCall], Awaitable[str]]
# Marks a call sent and runs its result handlers in one transaction (Dispatcher.complete_call).
ResultSink = Callable[[OutboxCall, dict[str, Any], dict[str, Any]], Awaitable[bool]]
_RESERVED = ("_method", "_params", "_then")


def split_payload(payload: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """The JSON body, HTTP method and query params of a stored call (reserved keys start with ``_``)."""
    body = {k: v for k, v in payload.items() if k not in _RESERVED}
    return body, str(payload.get("_method", "POST")), payload.get("_params")


class OutboxWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        clients: Mapping[str, PlatformCaller],
        clock: Clock,
        cfg: OutboxConfig,
        metrics: Metrics,
        reconcilers: Mapping[str, Reconciler] | None = None,
        result_sink: ResultSink | None = None,
    ) -> None:
        self.result_sink = result_sink
        self._engine = engine
        self._clients = clients
        self._clock = clock
        self._cfg = cfg
        self._metrics = metrics
        self._reconcilers = dict(reconcilers or {})
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._limit = asyncio.Semaphore(cfg.concurrency)

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._poll_loop(), name="outbox-poll")]

    async def stop(self, timeout: float = 10.0) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def busy(self) -> int:
        """Calls queued or running right now."""
        return len(self._tasks)

    async def settle(self) -> None:
        """Wait until every poked call has been attempted (tests, the demo's step-by-step output)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def notify(self, calls: list[tuple[int, int]]) -> None:
        """New rows committed: try them now rather than at the next poll.

        The most urgent calls of one commit (a welcome) go first; the rest of that commit (tags, profile
        fetch) start only after them, so nothing slow competes with a 20-second welcome_code.
        """
        if not calls:
            return
        top = min(priority for _, priority in calls)
        first = [rid for rid, priority in calls if priority == top]
        later = [rid for rid, priority in calls if priority != top]
        started = [self._spawn(rid) for rid in first]
        if later:
            task = asyncio.create_task(self._after(started, later), name="outbox-after")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _after(self, first: list[asyncio.Task[None]], later: list[int]) -> None:
        await asyncio.wait(first)
        for rid in later:
            self._spawn(rid)

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("outbox poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._cfg.poll_interval_seconds)
            self._wake.clear()

    async def run_due(self, limit: int = 100) -> int:
        """Claim and run due rows (and recover abandoned ``sending`` rows). Returns how many ran."""
        now = self._clock.now()
        due = or_(
            and_(_T.c.state == "pending", _T.c.next_attempt_at <= now),
            and_(_T.c.state == "sending", _T.c.lease_until < now),
        )
        async with self._engine.connect() as conn:
            ids = (
                (
                    await conn.execute(
                        select(_T.c.id).where(due).order_by(_T.c.priority, _T.c.next_attempt_at).limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        await asyncio.gather(*(self._guarded(rid) for rid in ids))
        return len(ids)

    def _spawn(self, rid: int) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guarded(rid), name=f"outbox-{rid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, rid: int) -> None:
        try:
            async with self._limit:
                await self.run_one(rid)
        except Exception:
            log.exception("outbox row failed unexpectedly", extra={"outbox_id": rid})

    async def run_one(self, rid: int) -> str | None:
        """Claim row ``rid`` if it is due and perform it. Returns the final state it reached, or None."""
        row = await self._claim(rid)
        if row is None:
            return None
        if row.state == "sending" and row.api in NOT_IDEMPOTENT:
            return await self._recover_interrupted(row)
        now = self._clock.now()
        if row.deadline_at is not None and now > row.deadline_at:
            return await self._finish(row, "expired", error="deadline passed before the call was made")
        client = self._clients.get(row.platform)
        if client is None:
            return await self._finish(row, "failed", error=f"no client configured for platform {row.platform}")
        body, method, params = split_payload(row.payload)
        try:
            result = await client.call(row.api, body if method == "POST" else None, params, method)
        except PlatformError as exc:
            return await self._after_error(row, exc, exc.final)
        except TransportError as exc:
            return await self._after_error(row, exc, False)
        if row.payload.get("_then") and self.result_sink is not None:
            try:
                await self.result_sink(row, body, result)
            except Exception as exc:  # the result handler failed: retry the (idempotent) read later
                log.exception("result handler failed", extra={"outbox_id": row.id, "api": row.api})
                return await self._after_error(row, exc, False)
            self._metrics.inc("siyu_outbox_calls_total", api=row.api, outcome="sent")
            return "sent"
        return await self._finish(row, "sent", result=result)

    async def _claim(self, rid: int) -> OutboxCall | None:
        now = self._clock.now()
        lease = now + timedelta(seconds=self._cfg.lease_seconds)
        claimable = or_(
            and_(_T.c.state == "pending", _T.c.next_attempt_at <= now),
            and_(_T.c.state == "sending", _T.c.lease_until < now),
        )
        async with self._engine.begin() as conn:
            before = (await conn.execute(select(_T).where(_T.c.id == rid, claimable))).mappings().first()
            if before is None:
                return None
            res = await conn.execute(
                update(_T)
                .where(_T.c.id == rid, _T.c.state == before["state"], claimable)
                .values(state="sending", lease_until=lease, attempts=_T.c.attempts + 1)
            )
            if res.rowcount != 1:
                return None
        row = OutboxCall(**{k: before[k] for k in before.keys()})  # noqa: SIM118 (RowMapping)
        row.attempts = before["attempts"] + 1
        return row

    async def _after_error(self, row: OutboxCall, exc: Exception, final: bool) -> str:
        now = self._clock.now()
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if final or row.attempts >= self._cfg.max_attempts:
            return await self._finish(row, "failed", error=error)
        if isinstance(exc, WelcomeBeingDistributed):  # 41096: another app is sending it right now
            delay = 0.5
        elif isinstance(exc, Retryable):  # the client already backed off; minute blocks last 60 s (§9.2)
            delay = 60.0 * row.attempts
        else:
            delay = min(300.0, 2.0**row.attempts)
        retry_at = now + timedelta(seconds=delay)
        if row.deadline_at is not None and retry_at > row.deadline_at:
            return await self._finish(row, "expired", error=f"{error}; no retry possible before the deadline")
        await self._update(row.id, state="pending", next_attempt_at=retry_at, last_error=error, lease_until=None)
        self._metrics.inc("siyu_outbox_calls_total", api=row.api, outcome="retry")
        return "pending"

    async def _recover_interrupted(self, row: OutboxCall) -> str:
        reconcile = self._reconcilers.get(row.api)
        if reconcile is None:
            return await self._finish(row, "failed", error="interrupted mid-call; not re-sent (not idempotent)")
        state = await reconcile(row)
        return await self._finish(row, state, error=None if state == "sent" else "reconciled after interruption")

    async def _finish(
        self, row: OutboxCall, state: str, *, error: str | None = None, result: dict[str, Any] | None = None
    ) -> str:
        await self._update(
            row.id,
            state=state,
            finished_at=self._clock.now(),
            last_error=error,
            result=result,
            lease_until=None,
        )
        self._metrics.inc("siyu_outbox_calls_total", api=row.api, outcome=state)
        if state != "sent":
            log.warning("outbox call %s: %s (%s)", state, row.api, error, extra={"outbox_id": row.id})
        return state

    async def _update(self, rid: int, **values: Any) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(_T).where(_T.c.id == rid).values(**values))


async def backlog(engine: AsyncEngine) -> dict[str, int]:
    """Rows by state that are not final yet (for /metrics)."""
    from sqlalchemy import func

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(_T.c.state, func.count()).where(_T.c.state.in_(("pending", "sending"))).group_by(_T.c.state)
        )
        return {state: int(n) for state, n in rows.all()}
