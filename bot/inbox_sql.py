"""The inbox writer's own database connection: one statement, one round trip per batch of receipts.

The callback hot path avoids SQLAlchemy on purpose (bench/RESULTS.md: compiling a multi-row INSERT per
batch and a pooled session per request cost more than the crypto). The writer owns one driver
connection — aiosqlite or asyncpg — and sends a statement whose text is fixed per batch size (SQLite)
or fixed altogether (PostgreSQL ``unnest``), so the driver caches it. Values are stored exactly as the
SQLAlchemy models store them (naive-UTC text datetimes and JSON text on SQLite, timestamptz/json on
PostgreSQL), so every other reader sees ordinary rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy.engine import make_url

COLUMNS = ("dedup_key", "platform", "kind", "payload", "received_at", "status", "attempts", "lease_until",
           "finished_at")  # fmt: skip
Row = tuple[str, str, str, dict[str, Any], datetime, str, int, datetime, datetime | None]


class ReceiptSink(Protocol):
    async def insert(self, rows: list[Row]) -> dict[str, int]:
        """Insert rows, skipping dedup_key conflicts; return {dedup_key: id} of the rows inserted."""
        ...

    async def close(self) -> None: ...


def open_sink(url: str) -> ReceiptSink:
    if url.startswith("postgresql"):
        return PostgresSink(url)
    return SqliteSink(url)


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLAlchemy's SQLite DATETIME text; isoformat is several times faster than strftime on this path
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@lru_cache(maxsize=512)
def _sqlite_insert(n: int) -> str:
    one = "(" + ",".join("?" * len(COLUMNS)) + ")"
    return (
        f"INSERT INTO receipts ({','.join(COLUMNS)}) VALUES {','.join([one] * n)} "
        "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
    )


class SqliteSink:
    """One aiosqlite connection in autocommit mode: each INSERT statement is its own durable transaction."""

    def __init__(self, url: str) -> None:
        self._path = make_url(url).database or ":memory:"
        self._db: Any = None

    async def _conn(self) -> Any:
        if self._db is None:
            import aiosqlite

            db = await aiosqlite.connect(self._path, isolation_level=None, timeout=30)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
                await db.execute(f"PRAGMA {pragma}")
            self._db = db
        return self._db

    async def insert(self, rows: list[Row]) -> dict[str, int]:
        params: list[Any] = []
        for key, platform, kind, payload, received, status, attempts, lease, finished in rows:
            params += [key, platform, kind, json.dumps(payload, ensure_ascii=False), _sqlite_time(received),
                       status, attempts, _sqlite_time(lease), _sqlite_time(finished)]  # fmt: skip
        db = await self._conn()
        try:
            result = await db.execute_fetchall(_sqlite_insert(len(rows)), params)
        except Exception:
            await self.close()  # reopen on the next batch (file replaced, disk error …)
            raise
        return {key: rid for rid, key in result}

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()


_PG_INSERT = (
    f"INSERT INTO receipts ({','.join(COLUMNS)}) "
    "SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::json[], $5::timestamptz[], "
    "$6::varchar[], $7::int[], $8::timestamptz[], $9::timestamptz[]) "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
)


class PostgresSink:
    """One asyncpg connection; the whole batch is one prepared ``INSERT … SELECT unnest(…)``."""

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None

    def __repr__(self) -> str:
        return "PostgresSink()"

    async def insert(self, rows: list[Row]) -> dict[str, int]:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            self._conn = await asyncpg.connect(self._dsn)
        columns: list[list[Any]] = [[] for _ in COLUMNS]
        for row in rows:
            for i, value in enumerate(row):
                columns[i].append(json.dumps(value, ensure_ascii=False) if i == 3 else value)
        try:
            records = await self._conn.fetch(_PG_INSERT, *columns)
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
