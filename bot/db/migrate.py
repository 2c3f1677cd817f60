"""``siyu-bot migrate``: alembic ``upgrade head`` on the configured database, SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from bot.db.engine import ensure_sqlite_dir


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Run in a worker thread or before the event loop: alembic's env.py starts its own loop."""
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)  # a first run: the database file's folder (default var/) may not exist yet
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def pending_migrations(url: str) -> bool:
    """True when the database is not at the newest revision (``serve`` refuses to start on PostgreSQL)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    engine = create_async_engine(url, poolclass=NullPool, hide_parameters=True)
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(lambda c: set(MigrationContext.configure(c).get_current_heads()))
    finally:
        await engine.dispose()
    return current != heads
