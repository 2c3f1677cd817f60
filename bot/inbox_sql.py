"""The inbox writer's own database connection: one statement, one round trip per batch of receipts.

The callback hot path avoids SQLAlchemy on purpose (bench/RESULTS.md: compiling a multi-row INSERT per
batch and a pooled session per request cost more than the crypto). The writer owns one driver
connection — aiosqlite or asyncpg — and sends a statement whose text is fixed per batch size (SQLite)
or fixed altogether (PostgreSQL ``unnest``), so the driver caches it. Values are stored exactly as the
SQLAlchemy models store them (naive-UTC text datetimes and JSON text on SQLite, timestamptz/json on
PostgreSQL), so every other reader sees ordinary rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from bot.db.gate import WriteGate

COLUMNS = ("dedup_key", "platform", "kind", "payload", "received_at", "status", "attempts", "lease_until",
           "finished_at", "owner")  # fmt: skip
log = logging.getLogger(__name__)
Row = tuple[str, str, str, dict[str, Any], datetime, str, int, datetime, datetime | None, str | None]


class ReceiptSink(Protocol):
    async def insert(self, rows: list[Row]) -> dict[str, int]:
        """Insert rows, skipping dedup_key conflicts; return {dedup_key: id} of the rows inserted."""
        ...

    async def close(self) -> None: ...


def open_sink(url: str, gate: WriteGate | None = None) -> ReceiptSink:
    """``gate``: the app engine's SQLite write gate (the sink's inserts take it first, as urgent)."""
    if url.startswith("postgresql"):
        return PostgresSink(url)
    return SqliteSink(url, gate)


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
        self._checkpoint_task: asyncio.Task[None] | None = None
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
        busy = self._checkpoint_task is not None and not self._checkpoint_task.done()
        if busy or now - self._last_checkpoint < self.CHECKPOINT_EVERY:
            return
        self._last_checkpoint = now
        self._checkpoint_task = asyncio.create_task(self._checkpoint(), name="inbox-wal-checkpoint")

    async def _checkpoint(self) -> None:
        try:
            if self._checkpointer is None:
                self._checkpointer = await self._open(autocheckpoint=1000)
            await self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:
            log.warning("WAL checkpoint failed; the next one retries", exc_info=True)

    async def insert(self, rows: list[Row]) -> dict[str, int]:
        batch = json.dumps(
            [
                [key, platform, kind, json.dumps(payload, ensure_ascii=False), _sqlite_time(received), status,
                 attempts, _sqlite_time(lease), _sqlite_time(finished), owner]
                for key, platform, kind, payload, received, status, attempts, lease, finished, owner in rows
            ],
            ensure_ascii=False,
        )  # fmt: skip
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

    async def close(self) -> None:
        if self._checkpoint_task is not None:
            await asyncio.gather(self._checkpoint_task, return_exceptions=True)
            self._checkpoint_task = None
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

    async def insert(self, rows: list[Row]) -> dict[str, int]:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            self._conn = await asyncpg.connect(self._dsn, timeout=5)
        columns: list[list[Any]] = [[] for _ in COLUMNS]
        for row in rows:
            for i, value in enumerate(row):
                columns[i].append(json.dumps(value, ensure_ascii=False) if i == 3 else value)
        try:
            records = await self._conn.fetch(_PG_INSERT, *columns, timeout=self.STATEMENT_TIMEOUT)
        except Exception:
            await self.close()
            raise
        return {r["dedup_key"]: r["id"] for r in records}

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()
