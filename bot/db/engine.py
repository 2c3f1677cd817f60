"""Engine construction (one owner: the app's cleanup context) and SQLite tuning."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from bot.config import DatabaseConfig
from bot.db.gate import GatedPool


def make_engine(cfg: DatabaseConfig) -> AsyncEngine:
    """The app's engine. ``hide_parameters``: bound values (access tokens, external_userids) never appear
    in SQLAlchemy's log lines (``echo``) nor in the text of the errors it raises, which handlers log."""
    url = cfg.url.get()
    common: dict[str, Any] = {"echo": cfg.echo, "hide_parameters": True}
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        # One connection behind an in-process gate (bot/db/gate.py): writers queue in asyncio instead of
        # sleeping in SQLite's busy handler, and the inbox writer goes first.
        engine = create_async_engine(url, connect_args={"timeout": 30}, poolclass=GatedPool, **common)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # A connection that died with the server (restart, failover, a cut) is replaced before a handler uses
    # it, and a new connection gives up after 5 s instead of holding a handler for a minute.
    common.update(pool_pre_ping=True, connect_args={"timeout": 5})
    if cfg.pool_size <= 0:
        return create_async_engine(url, poolclass=NullPool, **common)
    return create_async_engine(url, pool_size=cfg.pool_size, max_overflow=cfg.pool_size, **common)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; NORMAL sync is durable across process crashes
    # (kill -9), which is the failure the inbox must survive; busy_timeout waits instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
