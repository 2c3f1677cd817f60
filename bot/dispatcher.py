"""Routes typed events to handler functions and runs them exactly once per receipt.

A receipt's handlers run inside a database transaction that first flips the receipt ``pending → done``
(a conditional UPDATE, so a second runner of the same receipt — a sweeper on another replica — finds
nothing to do), then write business state and outbox rows. Platform calls happen only after the
commit, from the outbox.

Under load several receipts share one transaction (group commit, :mod:`bot.batches`): one claim
statement for all of them, then each receipt's handlers in arrival order, one commit. A batch stops
taking receipts once it has run ``inbox.handler_batch_ms`` (on SQLite the transaction holds the one
write lock the inbox writer — every callback's ack — waits for); the rest go into the next one. If any
handler raises, the whole batch rolls back and its receipts run again one transaction each, so one bad
receipt costs the others a retry, never their work: only its own failure is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import report_receipt_failed
from bot.background import Background
from bot.batches import BatchQueue, Job
from bot.clock import Clock
from bot.config import Settings
from bot.content_runtime import empty_content
from bot.context import Context, Runtime
from bot.db.models import OutboxCall, Receipt
from bot.door import Door, DoorAction, DoorActions, DoorCall, door_calls
from bot.events import DomainEvent, Event
from bot.metrics import Metrics
from bot.parts import Parts
from bot.replies import Reply
from bot.reply_plan import Planner, Planning, ReplyPlanners, first_reply
from bot.reply_slot import ReplySlot

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlatformResult:
    """What a platform call returned, for handlers registered with ``Router.on_result``."""

    api: str
    request: dict[str, Any]
    response: dict[str, Any]
    call_id: int | None = None  # the outbox row, for handlers that track their calls (group-send tasks)


Handler = Callable[[Any, Context], Awaitable[Reply | None]]
ResultHandler = Callable[[PlatformResult, Context], Awaitable[None]]


class _Receipt(Job):
    """One receipt's handler run, as queued for a batch; what it produced waits here until the commit."""

    __slots__ = ("calls", "ctx", "event", "inline", "receipt_id", "slot")

    def __init__(self, receipt_id: int, event: Event, slot: ReplySlot | None) -> None:
        super().__init__()
        self.receipt_id = receipt_id
        self.event = event
        self.slot = slot
        self.inline: Reply | None = None
        self.ctx: Context | None = None
        self.calls: list[tuple[int, int]] = []  # (outbox id, priority) of the calls it queued


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # runs holding or waiting for the lock


def person_of(event: Event) -> str | None:
    """The platform id of the person an event is about (OA openid, WeCom external_userid), if any."""
    for attr in ("openid", "external_userid"):
        value = getattr(event, attr, None)
        if isinstance(value, str) and value:
            return f"{attr}:{value}"
    return None


class Router:
    """A feature's handlers: ``@router.on(FriendAdded)`` registers a function for that event type."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: list[tuple[tuple[type[Event | DomainEvent], ...], Handler]] = []
        self._results: dict[str, list[ResultHandler]] = {}
        self.planners = ReplyPlanners()
        self.doors = DoorActions()

    def plans(self, *event_types: type[Event]) -> Callable[[Planner], Planner]:
        """Register a reply planner: a content-only passive reply, answered before the handlers run."""
        return self.planners.register(*event_types)

    def door(self, *event_types: type[Event]) -> Callable[[DoorAction], DoorAction]:
        """Register a door action: content-only platform calls queued with the receipt (bot/door.py)."""
        return self.doors.register(*event_types)

    def on(self, *event_types: type[Event | DomainEvent]) -> Callable[[Handler], Handler]:
        """Register a handler for callback events, or for domain events another feature emits."""

        def register(fn: Handler) -> Handler:
            self._handlers.append((event_types, fn))
            return fn

        return register

    def on_result(self, name: str) -> Callable[[ResultHandler], ResultHandler]:
        """Run ``fn`` with the response of an outbox call queued with ``then=name``."""

        def register(fn: ResultHandler) -> ResultHandler:
            self._results.setdefault(name, []).append(fn)
            return fn

        return register

    def handlers_for(self, event: Event | DomainEvent) -> list[Handler]:
        return [fn for types, fn in self._handlers if isinstance(event, types)]

    def listens_to(self, event_type: type[Event | DomainEvent]) -> bool:
        return any(issubclass(event_type, types) for types, _ in self._handlers)

    def result_handlers(self, name: str) -> list[ResultHandler]:
        return list(self._results.get(name, ()))


class Dispatcher:
    def __init__(
        self,
        routers: Iterable[Router],
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        metrics: Metrics,
        on_outbox: Callable[[list[tuple[int, int]]], None],
        services: Runtime | None = None,
    ) -> None:
        self._routers = list(routers)
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._metrics = metrics
        self._on_outbox = on_outbox
        self._services = services
        self._runs = Background("dispatch")  # handler runs, keyed by receipt id
        self._people: dict[str, _Turn] = {}  # per-person order (_in_order)
        # SQLite has one writer at a time: running handler transactions one by one avoids lock waits
        # (and keeps the inbox writer's commits flowing); PostgreSQL runs a few batches side by side.
        sqlite = settings.database.url.get().startswith("sqlite")
        width = 1 if sqlite else max(2, settings.database.pool_size // 2)
        self._batches = BatchQueue[_Receipt](width, settings.inbox.handler_batch_max, self._run_batch)
        self._batch_seconds = settings.inbox.handler_batch_ms / 1000
        # Recent seconds per receipt (moving average): a batch claims only as many receipts as should fit in
        # its budget, so a cut batch rarely has claims to undo.
        self._per_receipt = 0.002

    def handlers_for(self, event: Event | DomainEvent) -> list[Handler]:
        return [h for r in self._routers for h in r.handlers_for(event)]

    def listens_to(self, event_type: type[Event | DomainEvent]) -> bool:
        """Whether any handler would hear an event of ``event_type`` (to skip work nobody needs)."""
        return any(r.listens_to(event_type) for r in self._routers)

    def plan_reply(self, event: Event) -> Reply | None:
        """The first planner's reply for ``event`` (bot/reply_plan.py): pure, no database."""
        content = self._services.content if self._services is not None else empty_content(".")
        return first_reply((r.planners for r in self._routers), event, Planning(content, self._settings.tz))

    def door_calls(self, event: Event) -> list[DoorCall]:
        """The door actions' calls for ``event`` (bot/door.py): pure, no database; never raises."""
        registries = [r.doors for r in self._routers if r.doors]
        if not registries or not any(reg.for_event(event) for reg in registries):
            return []
        services = self._services
        content = services.content if services is not None else empty_content(".")
        parts = services.parts if services is not None else Parts()
        return door_calls(registries, event, Door(content, self._settings.tz, parts, self._clock.now()))

    def submit(self, receipt_id: int, event: Event, slot: ReplySlot | None = None) -> None:
        """Run the event's handlers in a tracked background task (once per receipt in this process)."""
        if receipt_id in self._runs:
            if slot is not None:
                slot.deliver(None)
            return
        self._runs.spawn(self.run(receipt_id, event, slot), f"receipt-{receipt_id}", key=receipt_id)

    @property
    def in_flight(self) -> int:
        return len(self._runs)

    def in_flight_ids(self) -> set[int]:
        """Receipts this process is running now (the sweeper leaves them alone)."""
        return {k for k in self._runs.running_keys() if isinstance(k, int)}

    async def drain(self, timeout: float) -> None:
        """Wait for running handlers (shutdown); whatever is cut off stays pending, free for others once this
        instance is marked stopped."""
        await self._runs.drain(timeout)

    async def run(self, receipt_id: int, event: Event, slot: ReplySlot | None = None) -> None:
        started = time.perf_counter()
        outcome = "done"
        try:
            async with self._in_order(event):
                outcome = await self._batches.through(_Receipt(receipt_id, event, slot))
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = "error"
            log.exception("handlers failed", extra={"receipt_id": receipt_id, "event_kind": event.kind})
            await self._record_failure(receipt_id, exc)
        finally:
            if slot is not None:
                slot.deliver(None)  # no-op when a reply was already delivered
            self._metrics.observe("siyu_handler_seconds", time.perf_counter() - started, kind=event.kind)
            self._metrics.inc("siyu_handler_runs_total", kind=event.kind, outcome=outcome)

    @contextlib.asynccontextmanager
    async def _in_order(self, event: Event) -> AsyncIterator[None]:
        """One person's events run one after another, in arrival order: a follow and the text right
        behind it (its passive reply already answered) would otherwise both create the customer and
        deadlock on PostgreSQL. Events of different people still run side by side."""
        who = person_of(event)
        if who is None:
            yield
            return
        entry = self._people.setdefault(who, _Turn())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._people[who]

    async def _run_batch(self, jobs: list[_Receipt]) -> int:
        """Run ``jobs`` in one transaction, in order, until all ran or the time budget is spent; returns how
        many ran. Never raises for a handler's failure: the batch is then run again one receipt at a time."""
        started = time.perf_counter()
        ran: list[_Receipt] = []
        jobs = jobs[: max(1, int(self._batch_seconds / self._per_receipt) + 1)]
        try:
            async with self._sessions() as session, session.begin():
                claimed = await self._claim(session, [j.receipt_id for j in jobs])
                for job in jobs:
                    ran.append(job)
                    if job.receipt_id in claimed:
                        claimed.discard(job.receipt_id)  # the same receipt queued twice runs once
                        await self._handle(session, job)
                    if time.perf_counter() - started >= self._batch_seconds:
                        break
                await self._release(session, claimed)
                for job in ran:
                    if job.ctx is not None:
                        job.calls = await job.ctx.flush_outbox()
        except asyncio.CancelledError:
            self._untake(ran)
            raise
        except Exception as exc:
            self._untake(ran)
            if len(jobs) == 1:  # alone already: its failure is its own
                jobs[0].fail(exc)
                return 1
            log.warning("a handler batch failed; running its receipts one at a time", extra={"receipts": len(ran)})
            for job in ran:
                await self._run_alone(job)
            return len(ran)
        self._per_receipt = 0.8 * self._per_receipt + 0.2 * max((time.perf_counter() - started) / len(ran), 1e-4)
        self._committed(ran)
        return len(ran)

    async def _run_alone(self, job: _Receipt) -> None:
        try:
            async with self._sessions() as session, session.begin():
                if await self._claim(session, [job.receipt_id]):
                    await self._handle(session, job)
                    assert job.ctx is not None
                    job.calls = await job.ctx.flush_outbox()
        except asyncio.CancelledError:
            self._untake([job])
            raise
        except Exception as exc:
            self._untake([job])
            job.fail(exc)
            return
        self._committed([job])

    async def _claim(self, session: AsyncSession, ids: list[int]) -> set[int]:
        """Flip the pending ones of ``ids`` to done in one statement; the ids it flipped."""
        result = await session.execute(
            update(Receipt)
            .where(Receipt.id.in_(set(ids)), Receipt.status == "pending")
            .values(status="done", finished_at=self._clock.now(), attempts=Receipt.attempts + 1, error=None)
            .returning(Receipt.id)
            .execution_options(synchronize_session=False)
        )
        return set(result.scalars())

    async def _release(self, session: AsyncSession, ids: set[int]) -> None:
        """Receipts claimed but not reached before the budget ran out: pending again, as they were (the claim
        is undone in the same transaction, so nobody ever sees them done)."""
        if ids:
            await session.execute(
                update(Receipt)
                .where(Receipt.id.in_(ids))
                .values(status="pending", finished_at=None, attempts=Receipt.attempts - 1)
                .execution_options(synchronize_session=False)
            )

    async def _handle(self, session: AsyncSession, job: _Receipt) -> None:
        ctx = Context(session, self._settings, self._clock, self._rng, job.receipt_id, self._services)
        job.ctx = ctx
        reply = await self._call_handlers(job.event, ctx)
        if reply is not None:
            job.inline = self._place_reply(reply, job.event, ctx, job.slot)

    def _committed(self, jobs: list[_Receipt]) -> None:
        self._metrics.inc("siyu_handler_batches_total")
        self._metrics.inc("siyu_handler_batched_receipts_total", len(jobs))
        calls: list[tuple[int, int]] = []
        for job in jobs:
            if job.inline is not None and job.slot is not None:
                job.slot.deliver(job.inline)
                self._metrics.inc("siyu_passive_replies_total", outcome="inline")
            calls.extend(job.calls)
        if calls:
            self._on_outbox(calls)
        for job in jobs:
            if job.ctx is not None:
                job.ctx.committed()
                job.finish("done")
            else:
                job.finish("already_done")

    @staticmethod
    def _untake(jobs: list[_Receipt]) -> None:
        """A rolled-back run's reply never goes out: its request may still get the next run's."""
        for job in jobs:
            if job.inline is not None and job.slot is not None:
                job.slot.untake()
            job.inline, job.ctx = None, None

    async def _call_handlers(self, event: Event, ctx: Context) -> Reply | None:
        reply: Reply | None = None
        for handler in self.handlers_for(event):
            result = await handler(event, ctx)
            if reply is None and result is not None:
                reply = result
        return reply

    def _place_reply(self, reply: Reply, event: Event, ctx: Context, slot: ReplySlot | None) -> Reply | None:
        """Inline when the HTTP request still waits; otherwise a customer-service message
        (docs/platform.md#customer-service-messages)."""
        if slot is not None and slot.try_take():
            return reply
        openid = getattr(event, "openid", None)
        if event.platform == "mp" and openid:
            ctx.call_platform("mp", "message/custom/send", reply.custom_message(openid), key="late-reply", priority=10)
            self._metrics.inc("siyu_passive_replies_total", outcome="late")
        return None

    async def complete_call(self, call: OutboxCall, request: dict[str, Any], response: dict[str, Any]) -> bool:
        """Mark an outbox call sent and run its result handlers in ONE transaction (exactly once)."""
        name = call.payload.get("_then")
        handlers = [h for r in self._routers for h in r.result_handlers(str(name))]
        async with self._sessions() as session, session.begin():
            done = await session.execute(
                update(OutboxCall)
                .where(OutboxCall.id == call.id, OutboxCall.state == "sending")
                .values(state="sent", finished_at=self._clock.now(), result=response, lease_until=None, owner=None)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return False
            ctx = Context(session, self._settings, self._clock, self._rng, call.receipt_id, self._services)
            result = PlatformResult(call.api, request, response, call.id)
            for handler in handlers:
                await handler(result, ctx)
            new_calls = await ctx.flush_outbox()
        if new_calls:
            self._on_outbox(new_calls)
        ctx.committed()
        return True

    async def _record_failure(self, receipt_id: int, exc: BaseException) -> None:
        inbox = self._settings.inbox
        now = self._clock.now()
        failed: tuple[str, str] | None = None
        try:
            async with self._sessions() as session, session.begin():
                receipt = await session.get(Receipt, receipt_id)
                if receipt is None or receipt.status != "pending":
                    return
                receipt.attempts += 1
                receipt.error = f"{type(exc).__name__}: {exc}"[:2000]
                if receipt.attempts >= inbox.max_attempts:
                    receipt.status, receipt.finished_at, receipt.owner = "failed", now, None
                    failed = (receipt.kind, receipt.error)
                else:  # released: any instance's sweeper retries it once the back-off has passed
                    receipt.owner = None
                    receipt.lease_until = now + timedelta(
                        seconds=inbox.retry_base_seconds * 2 ** (receipt.attempts - 1)
                    )
        except Exception:
            log.exception("could not record handler failure", extra={"receipt_id": receipt_id})
            return
        if failed is not None:  # after the commit: alert only on a failure that is recorded
            await report_receipt_failed(self._services, receipt_id, *failed)
