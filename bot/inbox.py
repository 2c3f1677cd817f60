"""Durable inbox: a callback's receipt is committed before WeChat gets its 200 ("claim before ack").

One writer task batches the INSERTs of many concurrent callbacks into one transaction
(``INSERT … ON CONFLICT (dedup_key) DO NOTHING RETURNING``) while each request still waits for its
own commit. That keeps the ORM session and a per-request transaction off the hot path: the
durable path stays within a few times the cost of a bare handler (bench/RESULTS.md).

Door actions (bot/door.py): the writer asks ``door`` for each event's content-only platform calls and
stores them with the receipt in the same transaction; their outbox ids go to ``on_outbox`` right after the
commit, so such a call (a welcome) is sent without waiting for the handlers.

A receipt is ``pending`` and held by the instance that stored it (``owner``, bot/instances.py) until a
dispatcher finishes it. The :class:`Sweeper` re-dispatches pending receipts whose owner is dead (a
crash: at once when the process restarted on the same host, within ``dead_after_seconds`` from another
replica), whose failed run is due for a retry, or that this process holds but no longer runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts import ReceiptFailed
from bot.background import Background
from bot.clock import Clock
from bot.db.gate import reraise_if_cancelling
from bot.db.models import Receipt
from bot.door import DoorCall
from bot.event_parser import from_fields
from bot.events import Event, Platform
from bot.inbox_sql import NewCalls, ReceiptSink, Row
from bot.instances import Instances
from bot.wechat import CallbackRejected

log = logging.getLogger(__name__)
_TABLE: Table = Receipt.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Claim:
    """Outcome of storing one callback: ``receipt_id`` is None when it was a duplicate.

    ``dispatch`` is False when no handler wants the event: its receipt was stored as ``done`` at once,
    so no per-receipt transaction follows the ack.
    """

    receipt_id: int | None
    dispatch: bool = True

    @property
    def duplicate(self) -> bool:
        return self.receipt_id is None


@dataclass(slots=True)
class _Pending:
    event: Event
    future: asyncio.Future[Claim]


class ReceiptWriter:
    """Owns the inbox INSERTs. ``claim`` returns once the receipt is committed (or was already there)."""

    def __init__(
        self,
        sinks: list[ReceiptSink],
        clock: Clock,
        owner: str,
        batch_max: int = 256,
        wants: Callable[[Event], bool] = lambda _event: True,
        door: Callable[[Event], list[DoorCall]] | None = None,
        on_outbox: Callable[[NewCalls], None] | None = None,
    ) -> None:
        """One writer task per sink: SQLite has one (a single writer), PostgreSQL may pipeline batches.

        ``owner`` is this process's instance id: the receipts it stores are its own until handled.
        ``door``: an event's door calls (``Dispatcher.door_calls``; must not raise); ``on_outbox``: the
        committed door calls, ``(outbox id, priority)`` (``OutboxWorker.notify``)."""
        self._door = door
        self._on_outbox = on_outbox
        self._sinks = sinks
        self._clock = clock
        self._owner = owner
        self._batch_max = batch_max
        self._wants = wants
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._workers = Background("inbox-writer")

    def start(self) -> None:
        for i, sink in enumerate(self._sinks):
            self._workers.spawn(self._run(sink), f"sink-{i}")

    async def stop(self) -> None:
        """Finish what is queued, then stop (called after intake has stopped)."""
        if not len(self._workers):
            return
        await self._queue.join()
        await self._workers.stop()
        for sink in self._sinks:
            await sink.close()

    async def claim(self, event: Event) -> Claim:
        if not len(self._workers):
            raise RuntimeError("inbox writer is not running")
        fut: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(event, fut))
        return await fut

    async def _run(self, sink: ReceiptSink) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(sink, batch)
            except Exception as exc:  # the DB is down or locked: every waiter answers non-200
                log.exception("inbox batch of %d failed", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, sink: ReceiptSink, batch: list[_Pending]) -> None:
        now = self._clock.now()
        rows: dict[str, Row] = {}
        wanted: dict[str, bool] = {}
        calls: dict[str, list[DoorCall]] = {}
        keys = [item.event.dedup_key for item in batch]  # a sha256 each: compute once per event
        for item, key in zip(batch, keys, strict=True):
            ev = item.event
            if key in rows:
                continue
            wanted[key] = self._wants(ev)
            status, finished, owner = ("pending", None, self._owner) if wanted[key] else ("done", now, None)
            rows[key] = (key, ev.platform, ev.kind, ev.raw, now, status, 0, now, finished, owner)
            if self._door is not None and (door := self._door(ev)):
                calls[key] = door
        new_calls: NewCalls = []
        if calls:
            inserted, new_calls = await sink.insert_with_calls(list(rows.values()), calls, now)
        else:
            inserted = await sink.insert(list(rows.values()))
        if new_calls and self._on_outbox is not None:
            try:
                self._on_outbox(new_calls)  # committed: send now, before the handlers run
            except Exception:  # the rows are durable: the outbox poll sends them
                log.exception("could not hand %d door call(s) to the outbox", len(new_calls))
        for item, key in zip(batch, keys, strict=True):
            # pop: the first waiter for a key owns the new receipt; later ones in the batch are duplicates
            rid = inserted.pop(key, None)
            if not item.future.done():
                item.future.set_result(Claim(rid, wanted.get(key, True)))


SourceParser = Callable[[dict[str, Any]], Event | None]


def event_from_receipt(
    platform: str, payload: dict[str, Any], sources: Mapping[str, SourceParser] | None = None
) -> Event | None:
    """Rebuild the typed event of a stored receipt (sweeper, replay). WeCom and Official Account receipts
    hold the callback's fields; any other platform (the shop's orders) is parsed by the feature that
    declared it as a receipt source (``Feature.sources``)."""
    parse = (sources or {}).get(platform)
    if parse is not None:
        return parse(payload)
    if platform not in ("wecom", "mp"):
        return None
    plat: Platform = "wecom" if platform == "wecom" else "mp"
    try:
        return from_fields(plat, payload)
    except CallbackRejected:
        return None


class Sweeper:
    """Re-dispatches pending receipts that nobody alive is handling, and failed runs due for a retry."""

    # Seconds between looks for this process's own lost receipts (a run that could not record its failure
    # while the database was down): soon enough for a welcome_code's 20 s.
    OWN_ORPHANS_EVERY = 2.0
    OWN_GRACE = timedelta(seconds=2)  # stored but not yet submitted: not lost

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        instances: Instances,
        interval: float,
        dispatch: Callable[[int, Event], None],
        in_flight: Callable[[], Collection[int]],
        on_failed: ReceiptFailed | None = None,
        sources: Mapping[str, SourceParser] | None = None,
    ) -> None:
        self._engine = engine
        self._sources = dict(sources or {})
        self._on_failed = on_failed
        self._clock = clock
        self._instances = instances
        self._interval = interval
        self._dispatch = dispatch
        self._in_flight = in_flight
        self._background = Background("inbox-sweeper")
        self._own_due = 0.0

    def start(self) -> None:
        self._background.spawn(self._loop(), "sweep")

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.sweep_once()
                if loop.time() >= self._own_due:
                    self._own_due = loop.time() + self.OWN_ORPHANS_EVERY
                    await self.sweep_own()
            except Exception:
                reraise_if_cancelling()
                log.exception("inbox sweep failed")
            await asyncio.sleep(self._interval)

    async def sweep_once(self, limit: int = 200) -> int:
        """Take receipts of dead owners and failed runs whose retry time came; dispatch them."""
        now = self._clock.now()
        live = await self._instances.live_ids()
        free = and_(
            _TABLE.c.status == "pending",
            or_(
                and_(_TABLE.c.owner.is_(None), _TABLE.c.lease_until < now),
                _TABLE.c.owner.not_in(sorted(live)),
            ),
        )
        return await self._take(free, limit)

    async def sweep_own(self, limit: int = 200) -> int:
        """Receipts this process holds but no task runs (a run ended without recording its outcome)."""
        now = self._clock.now()
        mine = and_(
            _TABLE.c.status == "pending",
            _TABLE.c.owner == self._instances.id,
            _TABLE.c.received_at < now - self.OWN_GRACE,
        )
        running = set(self._in_flight())
        return await self._take(mine, limit, skip=running)

    async def _take(self, where: ColumnElement[bool], limit: int, skip: Collection[int] = ()) -> int:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(_TABLE.c.id, _TABLE.c.platform, _TABLE.c.kind, _TABLE.c.payload, _TABLE.c.owner)
                    .where(where)
                    .order_by(_TABLE.c.id)
                    .limit(limit)
                )
            ).all()
        claimed = 0
        for rid, platform, kind, payload, owner in rows:
            if rid in skip:
                continue
            async with self._engine.begin() as conn:
                res = await conn.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id == rid, _TABLE.c.status == "pending", _TABLE.c.owner.is_not_distinct_from(owner))
                    .values(owner=self._instances.id)
                )
            if res.rowcount != 1:
                continue  # another replica took it
            event = event_from_receipt(platform, payload, self._sources)
            if event is None:
                await self._mark_unparseable(rid, kind)
                continue
            claimed += 1
            self._dispatch(rid, event)
        return claimed

    async def _mark_unparseable(self, rid: int, kind: str) -> None:
        error = "payload no longer parses"
        async with self._engine.begin() as conn:
            await conn.execute(
                update(_TABLE)
                .where(_TABLE.c.id == rid)
                .values(status="failed", error=error, finished_at=self._clock.now(), owner=None)
            )
        if self._on_failed is not None:
            await self._on_failed(rid, kind, error)
