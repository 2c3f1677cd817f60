"""Outbox worker: performs queued platform calls once, in priority order, within their deadlines.

States: ``pending → sending → sent | failed | expired | uncertain``. A row is claimed with a
compare-and-set (``pending → sending``, ``owner`` = this instance, ``attempts + 1``), so several replicas
never send the same row. A ``sending`` row whose owner died (bot/instances.py) was interrupted mid-call:
it is repeated only when the API is safe to repeat (bot/platform/repeat.py); otherwise a reconciler asks
the platform, or the row ends ``uncertain`` — never a blind re-send. Every other failure around a call
(a lost answer, Redis or the token store down, a bug) releases the row for a retry that still fits its
deadline; nothing waits for a lease. Welcome sends (priority 0) are poked straight from the inbox writer
(door actions, bot/door.py) or the dispatcher after commit; the poll loop is the safety net and the path
for scheduled rows.

Urgent rows (priority <= :data:`URGENT_PRIORITY`: a welcome, 20 s) have their own lane: their own
concurrency limit (a burst of tag and profile calls cannot hold every slot), their claims and outcomes take
the SQLite write gate as urgent (bot/db/gate.py ``urgent_writes``: behind the transaction in progress, ahead
of every queued handler transaction), and a retry is timed by itself rather than by the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.background import Background
from bot.clock import Clock
from bot.config import OutboxConfig
from bot.context import PRIORITY_WELCOME
from bot.db.gate import reraise_if_cancelling, urgent_writes
from bot.db.models import OutboxCall
from bot.instances import Instances
from bot.metrics import Metrics
from bot.platform.errors import (
    PlatformError,
    Retryable,
    TransportError,
    WelcomeBeingDistributed,
    WelcomeCodeUsed,
)
from bot.platform.repeat import repeatable

log = logging.getLogger(__name__)
K = TypeVar("K")
R = TypeVar("R")
_T: Table = OutboxCall.__table__  # type: ignore[assignment]


class PlatformCaller(Protocol):
    async def call(
        self,
        api: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        method: str = "POST",
    ) -> dict[str, Any]: ...


# Returns the state an interrupted call resolves to: "sent" (the platform has it) or "pending" (it has
# not: send it now).
Reconciler = Callable[[OutboxCall], Awaitable[str]]
# Marks a call sent and runs its result handlers in one transaction (Dispatcher.complete_call).
ResultSink = Callable[[OutboxCall, dict[str, Any], dict[str, Any]], Awaitable[bool]]
_RESERVED = ("_method", "_params", "_then", "_note")  # "_note": what a door action recorded (bot/door.py)
FINAL_STATES = ("sent", "failed", "expired", "uncertain")
# The shortest retry worth scheduling before a deadline; closer than this the row expires.
MIN_RETRY = timedelta(seconds=0.3)
URGENT_PRIORITY = PRIORITY_WELCOME  # rows at or below this priority take the urgent lane


def split_payload(payload: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """The JSON body, HTTP method and query params of a stored call (reserved keys start with ``_``)."""
    body = {k: v for k, v in payload.items() if k not in _RESERVED}
    return body, str(payload.get("_method", "POST")), payload.get("_params")


class _Coalesced(Generic[K, R]):
    """Calls made in the same event-loop turn run as ONE call of ``run`` with all their keys: a burst of
    welcomes committed together is claimed in one statement and finished in one transaction, instead of
    taking a pooled connection twice per welcome behind the handler transactions."""

    def __init__(self, run: Callable[[list[K]], Awaitable[Mapping[K, R]]], background: Background, name: str) -> None:
        self._run = run
        self._background = background
        self._name = name
        self._waiting: list[tuple[K, asyncio.Future[R | None]]] = []

    async def __call__(self, key: K) -> R | None:
        fut: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            self._background.spawn(self._flush(), self._name)
        self._waiting.append((key, fut))
        return await fut

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # everyone of this turn joins
        batch, self._waiting = self._waiting, []
        try:
            found = await self._run([key for key, _ in batch])
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("outbox stopped"))
            raise
        for key, fut in batch:
            if not fut.done():
                fut.set_result(found.get(key))


class OutboxWorker:
    OWN_ORPHANS_EVERY = 2.0  # seconds between looks for this process's own abandoned ``sending`` rows
    # Urgent calls at once: a burst of 200 welcomes a second, each a claim, a call and a finish that take
    # ~0.1-0.3 s on a busy event loop, needs dozens in flight (Little's law), not the default lane's 8.
    URGENT_CONCURRENCY = 64

    def __init__(
        self,
        engine: AsyncEngine,
        clients: Mapping[str, PlatformCaller],
        clock: Clock,
        cfg: OutboxConfig,
        metrics: Metrics,
        instances: Instances,
        reconcilers: Mapping[str, Reconciler] | None = None,
        result_sink: ResultSink | None = None,
    ) -> None:
        self.result_sink = result_sink
        self._engine = engine
        self._clients = clients
        self._clock = clock
        self._cfg = cfg
        self._metrics = metrics
        self._instances = instances
        self._reconcilers = dict(reconcilers or {})
        self._wake = asyncio.Event()
        self._calls = Background("outbox")  # calls being performed (and the 'later' halves of a commit)
        self._running: set[int] = set()  # rows this process is performing right now
        self._loops = Background("outbox-poll")
        self._limit = asyncio.Semaphore(cfg.concurrency)
        self._urgent_limit = asyncio.Semaphore(self.URGENT_CONCURRENCY)
        self._timers: set[asyncio.TimerHandle] = set()  # urgent retries waiting for their time
        self._urgent_claims = _Coalesced(self._claim_many, self._calls, "claim-urgent")
        self._urgent_sent = _Coalesced(self._finish_sent_many, self._calls, "finish-urgent")
        self._sent_results: dict[int, tuple[OutboxCall, dict[str, Any]]] = {}
        self._own_due = 0.0

    @property
    def owner(self) -> str:
        return self._instances.id

    def start(self) -> None:
        self._loops.spawn(self._poll_loop(), "poll")

    async def stop(self, timeout: float = 10.0) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await self._loops.stop()
        await self._calls.drain(timeout)

    @property
    def busy(self) -> int:
        """Calls queued or running right now."""
        return len(self._calls)

    async def settle(self) -> None:
        """Wait until every poked call has been attempted (tests, the demo's step-by-step output)."""
        await self._calls.wait_idle()

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
        started = [self._spawn(rid, urgent=top <= URGENT_PRIORITY) for rid in first]
        if later:
            self._calls.spawn(self._after(started, later), "after")

    async def _after(self, first: list[asyncio.Task[None]], later: list[int]) -> None:
        await asyncio.wait(first)
        for rid in later:
            self._spawn(rid)

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.run_due()
                if loop.time() >= self._own_due:
                    self._own_due = loop.time() + self.OWN_ORPHANS_EVERY
                    await self.run_own_orphans()
            except Exception:
                reraise_if_cancelling()
                log.exception("outbox poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._cfg.poll_interval_seconds)
            self._wake.clear()

    async def run_due(self, limit: int = 100) -> int:
        """Claim and run due rows, and rows a dead instance was sending. Returns how many ran."""
        now = self._clock.now()
        live = await self._instances.live_ids()
        due = or_(
            and_(_T.c.state == "pending", _T.c.next_attempt_at <= now),
            _abandoned(live),
        )
        return await self._run_where(due, limit, live)

    async def run_own_orphans(self, limit: int = 100) -> int:
        """``sending`` rows this process holds but no task performs (a run ended without its outcome)."""
        mine = and_(_T.c.state == "sending", _T.c.owner == self.owner)
        return await self._run_where(mine, limit, None, skip=set(self._running))

    async def _run_where(
        self, where: ColumnElement[bool], limit: int, live: set[str] | None, skip: set[int] | None = None
    ) -> int:
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(
                    select(_T.c.id, _T.c.priority)
                    .where(where)
                    .order_by(_T.c.priority, _T.c.next_attempt_at)
                    .limit(limit)
                )
            ).all()
        rows = [(rid, priority) for rid, priority in found if not skip or rid not in skip]
        await asyncio.gather(
            *(self._guarded(rid, live, orphan=skip is not None, urgent=prio <= URGENT_PRIORITY) for rid, prio in rows)
        )
        return len(rows)

    def _spawn(self, rid: int, *, urgent: bool = False) -> asyncio.Task[None]:
        return self._calls.spawn(self._guarded(rid, urgent=urgent), f"call-{rid}")

    def _retry_urgent_at(self, rid: int, delay: float) -> None:
        """Try an urgent row again when its retry is due, not at the next poll (up to a second later)."""

        def fire() -> None:
            self._timers.discard(timer)
            self._spawn(rid, urgent=True)

        timer = asyncio.get_running_loop().call_later(max(0.0, delay), fire)
        self._timers.add(timer)

    async def _guarded(
        self, rid: int, live: set[str] | None = None, *, orphan: bool = False, urgent: bool = False
    ) -> None:
        if rid in self._running:
            return
        self._running.add(rid)
        try:
            if urgent:
                with urgent_writes():
                    async with self._urgent_limit:
                        await self.run_one(rid, live, orphan=orphan, urgent=True)
            else:
                async with self._limit:
                    await self.run_one(rid, live, orphan=orphan)
        except Exception:
            log.exception("outbox row failed unexpectedly", extra={"outbox_id": rid})
        finally:
            self._running.discard(rid)

    async def run_one(
        self, rid: int, live: set[str] | None = None, *, orphan: bool = False, urgent: bool = False
    ) -> str | None:
        """Claim row ``rid`` if it is due (or abandoned) and perform it. Returns the state it reached, or None.

        ``live``: the instances alive now (a ``sending`` row of anyone else is abandoned; None: take the row
        only if it is ``pending``, as after a commit); ``orphan``: also take this process's own ``sending``
        row (nobody here performs it)."""
        if live is None and not orphan:
            row = await (self._urgent_claims(rid) if urgent else self._claim_pending(rid))
        else:
            row = await self._claim(rid, live, orphan)
        if row is None:
            return None
        if row.state == "sending":  # interrupted mid-call: the platform may have acted
            row.maybe_sent = True
            if not repeatable(row.api):
                return await self._recover_interrupted(row)
        now = self._clock.now()
        if row.deadline_at is not None and now > row.deadline_at:
            return await self._past_deadline(row, "deadline passed before the call was made")
        client = self._clients.get(row.platform)
        if client is None:
            return await self._finish(row, "failed", error=f"no client configured for platform {row.platform}")
        return await self._perform(row, client, urgent=urgent)

    async def _perform(self, row: OutboxCall, client: PlatformCaller, *, urgent: bool = False) -> str | None:
        body, method, params = split_payload(row.payload)
        try:
            result = await client.call(row.api, body if method == "POST" else None, params, method)
        except WelcomeCodeUsed as exc:
            if row.maybe_sent:  # our earlier attempt delivered it; only its answer was lost
                return await self._finish(row, "sent", error=f"delivered by an earlier attempt ({exc.errmsg})")
            return await self._after_error(row, exc, exc.final)
        except TransportError as exc:
            if exc.maybe_sent and not repeatable(row.api):
                return await self._finish(row, "uncertain", error=f"answer lost, not re-sent: {exc}")
            row.maybe_sent = row.maybe_sent or exc.maybe_sent
            return await self._after_error(row, exc, False)
        except PlatformError as exc:
            return await self._after_error(row, exc, exc.final)
        except Exception as exc:  # the token store, Redis … failed before the request went out
            log.warning("outbox call could not be made: %s", type(exc).__name__, extra={"outbox_id": row.id})
            return await self._after_error(row, exc, False)
        if row.payload.get("_then") and self.result_sink is not None:
            try:
                await self.result_sink(row, body, result)
            except Exception as exc:  # the result handler failed: retry the (idempotent) read later
                log.exception("result handler failed", extra={"outbox_id": row.id, "api": row.api})
                return await self._after_error(row, exc, False)
            self._metrics.inc("siyu_outbox_calls_total", api=row.api, outcome="sent")
            return "sent"
        if urgent:
            return await self._finish_sent_urgent(row, result)
        return await self._finish(row, "sent", result=result)

    async def _finish_sent_urgent(self, row: OutboxCall, result: dict[str, Any]) -> str | None:
        self._sent_results[row.id] = (row, result)
        try:
            updated = await self._urgent_sent(row.id)
        finally:
            self._sent_results.pop(row.id, None)
        if not updated:
            log.warning("outbox row taken over by another instance", extra={"outbox_id": row.id})
            return None
        self._metrics.inc("siyu_outbox_calls_total", api=row.api, outcome="sent")
        return "sent"

    async def _claim_many(self, rids: list[int]) -> dict[int, OutboxCall]:
        """:meth:`_claim_pending` for many rows in one statement."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            taken = (
                (
                    await conn.execute(
                        update(_T)
                        .where(_T.c.id.in_(rids), _T.c.state == "pending", _T.c.next_attempt_at <= now)
                        .values(state="sending", owner=self.owner, lease_until=None, attempts=_T.c.attempts + 1)
                        .returning(*_T.c)
                    )
                )
                .mappings()
                .all()
            )
        found: dict[int, OutboxCall] = {}
        for mapping in taken:
            row = OutboxCall(**{k: mapping[k] for k in mapping.keys()})  # noqa: SIM118 (RowMapping)
            row.state = "pending"  # what it was: not an interrupted call
            row.maybe_sent = bool(mapping["maybe_sent"])
            found[row.id] = row
        return found

    async def _finish_sent_many(self, rids: list[int]) -> dict[int, bool]:
        """Mark many performed rows ``sent`` in one transaction (each still under this process's claim)."""
        now = self._clock.now()
        done: dict[int, bool] = {}
        async with self._engine.begin() as conn:
            for rid in rids:
                _row, result = self._sent_results[rid]
                res = await conn.execute(
                    update(_T)
                    .where(_T.c.id == rid, _T.c.state == "sending", _T.c.owner == self.owner)
                    .values(state="sent", finished_at=now, last_error=None, result=result, owner=None)
                )
                done[rid] = res.rowcount == 1
        return done

    async def _claim_pending(self, rid: int) -> OutboxCall | None:
        """The common case — a row just committed, or due — in one statement."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            taken = (
                (
                    await conn.execute(
                        update(_T)
                        .where(_T.c.id == rid, _T.c.state == "pending", _T.c.next_attempt_at <= now)
                        .values(state="sending", owner=self.owner, lease_until=None, attempts=_T.c.attempts + 1)
                        .returning(*_T.c)
                    )
                )
                .mappings()
                .first()
            )
        if taken is None:
            return None
        row = OutboxCall(**{k: taken[k] for k in taken.keys()})  # noqa: SIM118 (RowMapping)
        row.state = "pending"  # what it was: not an interrupted call
        row.maybe_sent = bool(taken["maybe_sent"])
        return row

    async def _claim(self, rid: int, live: set[str] | None, orphan: bool) -> OutboxCall | None:
        now = self._clock.now()
        claimable: list[ColumnElement[bool]] = [and_(_T.c.state == "pending", _T.c.next_attempt_at <= now)]
        if live is not None:
            claimable.append(_abandoned(live))
        if orphan:
            claimable.append(and_(_T.c.state == "sending", _T.c.owner == self.owner))
        async with self._engine.begin() as conn:
            before = (await conn.execute(select(_T).where(_T.c.id == rid, or_(*claimable)))).mappings().first()
            if before is None:
                return None
            res = await conn.execute(
                update(_T)
                .where(_T.c.id == rid, _T.c.state == before["state"], _T.c.attempts == before["attempts"])
                .values(state="sending", owner=self.owner, lease_until=None, attempts=_T.c.attempts + 1)
            )
            if res.rowcount != 1:
                return None
        row = OutboxCall(**{k: before[k] for k in before.keys()})  # noqa: SIM118 (RowMapping)
        row.attempts = before["attempts"] + 1
        row.maybe_sent = bool(before["maybe_sent"])
        return row

    def _retry_delay(self, row: OutboxCall, exc: Exception) -> float:
        if isinstance(exc, WelcomeBeingDistributed):  # 41096: another app is sending it right now
            return 0.5
        if isinstance(exc, Retryable):  # the client already backed off; minute blocks last 60 s (WeCom)
            return 60.0 * row.attempts
        if isinstance(exc, TransportError) or not isinstance(exc, PlatformError):
            return float(min(30.0, 0.5 * 2 ** (row.attempts - 1)))  # the network, Redis, the token store
        return min(300.0, 2.0**row.attempts)

    async def _after_error(self, row: OutboxCall, exc: Exception, final: bool) -> str | None:
        now = self._clock.now()
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if final or row.attempts >= self._cfg.max_attempts:
            return await self._finish(row, "uncertain" if row.maybe_sent else "failed", error=error)
        retry_at = now + timedelta(seconds=self._retry_delay(row, exc))
        if row.deadline_at is not None and retry_at > row.deadline_at:
            # back off only as far as the deadline allows: half the time left, while that is worth trying
            left = row.deadline_at - now
            if left / 2 < MIN_RETRY:
                return await self._past_deadline(row, f"{error}; no retry possible before the deadline")
            retry_at = now + left / 2
        updated = await self._update(
            row, state="pending", next_attempt_at=retry_at, last_error=error, owner=None, maybe_sent=row.maybe_sent
        )
        if not updated:
            return None
        self._metrics.inc("siyu_outbox_calls_total", api=row.api, outcome="retry")
        if row.priority <= URGENT_PRIORITY:
            self._retry_urgent_at(row.id, (retry_at - now).total_seconds())
        return "pending"

    async def _past_deadline(self, row: OutboxCall, error: str) -> str | None:
        """Expired — unless an earlier attempt may have acted: then nobody can tell (``uncertain``)."""
        return await self._finish(row, "uncertain" if row.maybe_sent else "expired", error=error)

    async def _recover_interrupted(self, row: OutboxCall) -> str | None:
        reconcile = self._reconcilers.get(row.api)
        if reconcile is None:
            return await self._finish(row, "uncertain", error="interrupted mid-call; not re-sent (not repeatable)")
        try:
            state = await reconcile(row)
        except Exception as exc:  # the platform could not be asked: ask again on the next attempt
            log.warning("reconciler failed: %s", type(exc).__name__, extra={"outbox_id": row.id})
            return await self._release_interrupted(row, exc)
        if state == "pending":  # the platform has no trace of it: send it now, once
            row.maybe_sent = False
            client = self._clients.get(row.platform)
            if client is None:
                return await self._finish(row, "failed", error=f"no client configured for platform {row.platform}")
            return await self._perform(row, client)
        return await self._finish(row, state, error=None if state == "sent" else "reconciled after interruption")

    async def _release_interrupted(self, row: OutboxCall, exc: Exception) -> str | None:
        """Keep the row ``sending`` (still interrupted) but let any instance retry the reconciliation."""
        if row.attempts >= self._cfg.max_attempts:
            return await self._finish(row, "uncertain", error=f"could not reconcile: {type(exc).__name__}")
        ok = await self._update(row, state="sending", owner=None, last_error=f"reconcile: {type(exc).__name__}")
        return "sending" if ok else None

    async def _finish(
        self, row: OutboxCall, state: str, *, error: str | None = None, result: dict[str, Any] | None = None
    ) -> str | None:
        updated = await self._update(
            row, state=state, finished_at=self._clock.now(), last_error=error, result=result, owner=None
        )
        if not updated:
            return None
        self._metrics.inc("siyu_outbox_calls_total", api=row.api, outcome=state)
        if state != "sent":
            log.warning("outbox call %s: %s (%s)", state, row.api, error, extra={"outbox_id": row.id})
        return state

    async def _update(self, row: OutboxCall, **values: Any) -> bool:
        """Write the outcome of this process's attempt — unless another instance took the row meanwhile."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                update(_T).where(_T.c.id == row.id, _T.c.state == "sending", _T.c.owner == self.owner).values(**values)
            )
        if res.rowcount != 1:
            log.warning("outbox row taken over by another instance", extra={"outbox_id": row.id})
            return False
        return True


def _abandoned(live: set[str]) -> ColumnElement[bool]:
    """A ``sending`` row nobody alive performs: its owner is dead, or it was released (owner NULL)."""
    return and_(_T.c.state == "sending", or_(_T.c.owner.is_(None), _T.c.owner.not_in(sorted(live))))


async def backlog(engine: AsyncEngine) -> dict[str, int]:
    """Rows by state that are not final yet (for /metrics)."""
    from sqlalchemy import func

    async with engine.connect() as conn:
        rows = await conn.execute(
            select(_T.c.state, func.count()).where(_T.c.state.in_(("pending", "sending"))).group_by(_T.c.state)
        )
        return {state: int(n) for state, n in rows.all()}
