"""Migrations: upgrade/downgrade round trip on SQLite and PostgreSQL, and models == migrations."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.db.migrate import downgrade, upgrade
from bot.db.models import Base

PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL", "")


def _diff(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(url, poolclass=NullPool)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
            )
        await engine.dispose()
        return list(diff)

    return asyncio.run(run())


def _round_trip(url: str) -> None:
    upgrade(url)
    assert _diff(url) == []
    downgrade(url, "base")
    upgrade(url)
    assert _diff(url) == []


def test_sqlite_round_trip_and_models_match(tmp_path: Path) -> None:
    _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_round_trip_and_models_match() -> None:
    if not PG_URL:
        pytest.skip("needs SIYU_TEST_DATABASE_URL")

    base, _, _ = PG_URL.rpartition("/")
    url = f"{base}/siyu_migtest"

    async def recreate(create: bool) -> None:
        engine = create_async_engine(PG_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text("DROP DATABASE IF EXISTS siyu_migtest WITH (FORCE)"))
            if create:
                await conn.execute(text("CREATE DATABASE siyu_migtest"))
        await engine.dispose()

    asyncio.run(recreate(True))
    try:
        _round_trip(url)
    finally:
        asyncio.run(recreate(False))


def test_first_run_creates_the_sqlite_folder(tmp_path: Path) -> None:
    """The default URL is sqlite:///var/siyu.db: `serve` on a fresh checkout must not fail on a missing var/."""
    target = tmp_path / "var" / "nested" / "siyu.db"
    upgrade(f"sqlite+aiosqlite:///{target}")
    assert target.exists()
