"""Shared fixtures: databases (SQLite always, PostgreSQL when SIYU_TEST_DATABASE_URL is set),
settings built around WeCom's official sample credentials (:mod:`tests.support.settings`), and a frozen
clock. Apps are built by :mod:`tests.support.apps`."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

import handlers.tables  # noqa: F401  (registers every table on Base.metadata)
from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.migrate import upgrade
from bot.db.models import Base
from tests.support.settings import PG_URL, make_settings


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (migrations run once)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    import sqlite3

    with sqlite3.connect(path) as conn:  # the file is in WAL mode: fold the log in before copying it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> str:
    if not PG_URL:
        if os.environ.get("SIYU_TEST_REQUIRE_SERVICES"):
            pytest.fail("SIYU_TEST_REQUIRE_SERVICES is set but SIYU_TEST_DATABASE_URL is not")
        pytest.skip("PostgreSQL tests need SIYU_TEST_DATABASE_URL")
    engine_url = PG_URL
    import asyncio

    async def reset() -> None:
        engine = create_async_engine(engine_url, poolclass=NullPool)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())
    upgrade(engine_url)
    return engine_url


def _truncate_sql() -> str:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    return f"TRUNCATE {names} RESTART IDENTITY CASCADE"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "siyu.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = request.getfixturevalue("pg_migrated")
    import asyncio

    async def truncate() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        async with engine.begin() as conn:
            await conn.execute(text(_truncate_sql()))
        await engine.dispose()

    asyncio.run(truncate())
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "siyu.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC))


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(db_url, poolclass=NullPool)
    yield eng
    await eng.dispose()


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """aiosqlite's worker threads are not daemons: a connection left open by a failed test would keep
    the interpreter (and CI) waiting forever after the summary. Exit with pytest's status instead."""
    import sys
    import threading

    lingering = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if lingering and _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
