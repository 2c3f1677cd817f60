"""Async alembic environment: the URL comes from siyu-bot's config (``-x url=`` or the Config attribute)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import handlers.tables  # noqa: F401  (registers every table on Base.metadata)
from bot.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise RuntimeError("no database URL: run through `siyu-bot migrate`")
    return str(url)


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # WAL is a property of the file: set it once here, so the server's connections never race to
        # switch the journal mode at start-up (switching needs an exclusive lock and does not wait).
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        connection.commit()  # end the autobegun transaction: alembic must own the migration's transaction
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url(), poolclass=NullPool, hide_parameters=True)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
