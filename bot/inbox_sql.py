"""The inbox writer's own database connection: one statement, one round trip per batch of receipts.

The callback hot path avoids SQLAlchemy on purpose (bench/RESULTS.md: compiling a multi-row INSERT per
batch and a pooled session per request cost more than the crypto). The writer owns one driver
connection — aiosqlite or asyncpg — and sends a statement whose text is fixed per batch size (SQLite)
or fixed altogether (PostgreSQL ``unnest``), so the driver caches it. Values are stored exactly as the
SQLAlchemy models store them (naive-UTC text datetimes and JSON text on SQLite, timestamptz/json on
PostgreSQL), so every other reader sees ordinary rows.

A batch whose events have door actions (bot/door.py) is stored with :meth:`ReceiptSink.insert_with_calls`:
the receipts and their outbox rows in one transaction, still on this one connection.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from bot.background import Background
from bot.context import outbox_key
from bot.db.gate import WriteGate
from bot.door import DoorCall

COLUMNS = ("dedup_key", "platform", "kind", "payload", "received_at", "status", "attempts", "lease_until",
           "finished_at", "owner")  # fmt: skip
log = logging.getLogger(__name__)
Row = tuple[str, str, str, dict[str, Any], datetime, str, int, datetime, datetime | None, str | None]
# Outbox rows of door actions: state 'pending', attempts 0 and maybe_sent false are constants of the statement.
OUTBOX_COLUMNS = ("idempotency_key", "receipt_id", "platform", "api", "payload", "priority", "created_at",
                  "next_attempt_at", "deadline_at")  # fmt: skip
OutboxRow = tuple[str, int, str, str, dict[str, Any], int, datetime, datetime, datetime | None]
DoorCalls = Mapping[str, Sequence[DoorCall]]  # dedup_key → the door calls of that event
NewCalls = list[tuple[int, int]]  # (outbox id, priority) of the calls inserted, for OutboxWorker.notify


class ReceiptSink(Protocol):
    async def insert(self, rows: list[Row]) -> dict[str, int]:
        """Insert rows, skipping dedup_key conflicts; return {dedup_key: id} of the rows inserted."""
        ...

    async def insert_with_calls(
        self, rows: list[Row], calls: DoorCalls, now: datetime
    ) -> tuple[dict[str, int], NewCalls]:
        """:meth:`insert`, and in the same transaction the door calls of the receipts actually inserted
        (a duplicate's calls are dropped), skipping idempotency_key conflicts."""
        ...

    async def close(self) -> None: ...


def open_sink(url: str, gate: WriteGate | None = None) -> ReceiptSink:
    """``gate``: the app engine's SQLite write gate (the sink's inserts take it first, as urgent)."""
    if url.startswith("postgresql"):
        return PostgresSink(url)
    return SqliteSink(url, gate)


def outbox_rows(inserted: Mapping[str, int], calls: DoorCalls, now: datetime) -> list[OutboxRow]:
    """The outbox rows of the receipts just inserted, keyed as ``Context.call_platform`` keys them."""
    return [
        (outbox_key(call.key, f"r{rid}"), rid, call.platform, call.api, call.payload(), call.priority, now, now,
         call.deadline)
        for dedup_key, rid in inserted.items()
        for call in calls.get(dedup_key, ())
    ]  # fmt: skip


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLAlchemy's SQLite DATETIME text; isoformat is several times faster than strftime on this path
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# The whole batch is ONE bound parameter — a JSON array of rows expanded by SQLite's json_each in C —
# so the driver thread holds the GIL for one string instead of 9 objects per row.
_SQLITE_INSERT = (
    f"INSERT INTO receipts ({','.join(COLUMNS)}) "
    "SELECT " + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(COLUMNS))) + " FROM json_each(?) "
    "WHERE true ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
)


_SQLITE_OUTBOX = (
    f"INSERT INTO outbox ({','.join(OUTBOX_COLUMNS)}, state, attempts, maybe_sent) "
    "SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(OUTBOX_COLUMNS)))
    + ", 'pending', 0, 0 FROM json_each(?) WHERE true ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, priority"
)


class SqliteSink:
    """One aiosqlite connection in autocommit mode: each INSERT statement is its own durable transaction.

    The writer never checkpoints the WAL itself (a checkpoint inside a commit was the latency spike of
    the ack path); a second connection runs a PASSIVE checkpoint — which never blocks the writer — at
    most once a second, off the request path.
    """

    CHECKPOINT_EVERY = 1.0  # seconds

    def __init__(self, url: str, gate: WriteGate | None = None) -> None:
        self._path = make_url(url).database or ":memory:"
        self._gate = gate
        self._db: Any = None
        self._checkpointer: Any = None
        self._checkpoints = Background("inbox-wal")
        self._last_checkpoint = time.monotonic()

    async def _open(self, autocheckpoint: int) -> Any:
        import aiosqlite

        db = await aiosqlite.connect(self._path, isolation_level=None, timeout=30)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            await db.execute(f"PRAGMA {pragma}")
        await db.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        return db

    async def _conn(self) -> Any:
        if self._db is None:
            self._db = await self._open(autocheckpoint=0)
        return self._db

    def _maybe_checkpoint(self) -> None:
        now = time.monotonic()
        if len(self._checkpoints) or now - self._last_checkpoint < self.CHECKPOINT_EVERY:
            return
        self._last_checkpoint = now
        self._checkpoints.spawn(self._checkpoint(), "checkpoint")

    async def _checkpoint(self) -> None:
        try:
            if self._checkpointer is None:
                self._checkpointer = await self._open(autocheckpoint=1000)
            await self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:
            log.warning("WAL checkpoint failed; the next one retries", exc_info=True)

    @staticmethod
    def _receipts_json(rows: list[Row]) -> str:
        return json.dumps(
            [
                [key, platform, kind, json.dumps(payload, ensure_ascii=False), _sqlite_time(received), status,
                 attempts, _sqlite_time(lease), _sqlite_time(finished), owner]
                for key, platform, kind, payload, received, status, attempts, lease, finished, owner in rows
            ],
            ensure_ascii=False,
        )  # fmt: skip

    async def insert(self, rows: list[Row]) -> dict[str, int]:
        batch = self._receipts_json(rows)
        db = await self._conn()
        if self._gate is not None:
            await self._gate.acquire(urgent=True)
        try:
            result = await db.execute_fetchall(_SQLITE_INSERT, (batch,))
        except Exception:
            await self.close()  # reopen on the next batch (file replaced, disk error …)
            raise
        finally:
            if self._gate is not None:
                self._gate.release()
        self._maybe_checkpoint()
        return {key: rid for rid, key in result}

    async def insert_with_calls(
        self, rows: list[Row], calls: DoorCalls, now: datetime
    ) -> tuple[dict[str, int], NewCalls]:
        batch = self._receipts_json(rows)
        db = await self._conn()
        if self._gate is not None:
            await self._gate.acquire(urgent=True)
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                inserted = {key: rid for rid, key in await db.execute_fetchall(_SQLITE_INSERT, (batch,))}
                outbox = [
                    [key, rid, platform, api, json.dumps(payload, ensure_ascii=False), priority, _sqlite_time(created),
                     _sqlite_time(due), _sqlite_time(deadline)]
                    for key, rid, platform, api, payload, priority, created, due, deadline in outbox_rows(
                        inserted, calls, now
                    )
                ]  # fmt: skip
                new_calls: NewCalls = []
                if outbox:
                    result = await db.execute_fetchall(_SQLITE_OUTBOX, (json.dumps(outbox, ensure_ascii=False),))
                    new_calls = [(rid, priority) for rid, priority in result]
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        except Exception:
            await self.close()
            raise
        finally:
            if self._gate is not None:
                self._gate.release()
        self._maybe_checkpoint()
        return inserted, new_calls

    async def close(self) -> None:
        await self._checkpoints.wait_idle()
        for name in ("_checkpointer", "_db"):
            conn = getattr(self, name)
            if conn is not None:
                setattr(self, name, None)
                await conn.close()


_PG_INSERT = (
    f"INSERT INTO receipts ({','.join(COLUMNS)}) "
    "SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::json[], $5::timestamptz[], "
    "$6::varchar[], $7::int[], $8::timestamptz[], $9::timestamptz[], $10::varchar[]) "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
)


_PG_OUTBOX = (
    f"INSERT INTO outbox ({','.join(OUTBOX_COLUMNS)}, state, attempts, maybe_sent) "
    "SELECT *, 'pending', 0, false FROM unnest($1::varchar[], $2::bigint[], $3::varchar[], $4::varchar[], "
    "$5::json[], $6::int[], $7::timestamptz[], $8::timestamptz[], $9::timestamptz[]) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, priority"
)


# Receipts and their door calls in ONE statement (one round trip, atomic): the calls of a receipt that was a
# duplicate join nothing and are not inserted. A call's key is global (``welcome:<code>``) or scoped by
# its receipt's new id, as :func:`bot.context.outbox_key` scopes it.
_PG_INSERT_WITH_CALLS = (
    "WITH r AS (" + _PG_INSERT + "), c AS ("
    f"INSERT INTO outbox ({','.join(OUTBOX_COLUMNS)}, state, attempts, maybe_sent) "
    "SELECT CASE WHEN k.global THEN k.key ELSE 'r' || r.id || ':' || k.key END, r.id, k.platform, k.api, "
    "k.payload, k.priority, k.created, k.next_at, k.deadline, 'pending', 0, false "
    "FROM unnest($11::varchar[], $12::varchar[], $13::bool[], $14::varchar[], $15::varchar[], $16::json[], "
    "$17::int[], $18::timestamptz[], $19::timestamptz[], $20::timestamptz[]) "
    "AS k(dedup_key, key, global, platform, api, payload, priority, created, next_at, deadline) "
    "JOIN r ON r.dedup_key = k.dedup_key "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, priority) "
    "SELECT true AS receipt, id, dedup_key, NULL::int AS priority FROM r "
    "UNION ALL SELECT false, id, NULL, priority FROM c"
)


class PostgresSink:
    """One asyncpg connection; the whole batch is one prepared ``INSERT … SELECT unnest(…)``."""

    # A hung database must not hold callbacks past WeChat's 5 s: fail, answer 503, WeChat retries (the
    # dedup key catches a batch that did commit).
    STATEMENT_TIMEOUT = 4.0

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None

    def __repr__(self) -> str:
        return "PostgresSink()"

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            self._conn = await asyncpg.connect(self._dsn, timeout=5)
        return self._conn

    @staticmethod
    def _columns(rows: Sequence[tuple[Any, ...]], width: int, json_at: int) -> list[list[Any]]:
        columns: list[list[Any]] = [[] for _ in range(width)]
        for row in rows:
            for i, value in enumerate(row):
                columns[i].append(json.dumps(value, ensure_ascii=False) if i == json_at else value)
        return columns

    async def insert(self, rows: list[Row]) -> dict[str, int]:
        conn = await self._connection()
        columns = self._columns(rows, len(COLUMNS), 3)
        try:
            records = await conn.fetch(_PG_INSERT, *columns, timeout=self.STATEMENT_TIMEOUT)
        except Exception:
            await self.close()
            raise
        return {r["dedup_key"]: r["id"] for r in records}

    async def insert_with_calls(
        self, rows: list[Row], calls: DoorCalls, now: datetime
    ) -> tuple[dict[str, int], NewCalls]:
        conn = await self._connection()
        columns = self._columns(rows, len(COLUMNS), 3)
        door: list[list[Any]] = [[] for _ in range(10)]
        for dedup_key, made in calls.items():
            for call in made:
                values = (
                    dedup_key, call.key, outbox_key(call.key, "") == call.key, call.platform, call.api,
                    json.dumps(call.payload(), ensure_ascii=False), call.priority, now, now, call.deadline,
                )  # fmt: skip
                for column, value in zip(door, values, strict=True):
                    column.append(value)
        try:
            records = await conn.fetch(_PG_INSERT_WITH_CALLS, *columns, *door, timeout=self.STATEMENT_TIMEOUT)
        except Exception:
            await self.close()
            raise
        inserted = {r["dedup_key"]: r["id"] for r in records if r["receipt"]}
        return inserted, [(r["id"], r["priority"]) for r in records if not r["receipt"]]

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()
