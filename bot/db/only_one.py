"""At most one process at a time runs a piece of background work: a PostgreSQL advisory lock.

For jobs whose every run acts on the outside world and that no row claim splits up (the hourly media
refresh uploads files to WeCom: N workers starting together would each upload every expiring file). The
lock is session-level on a connection held for the run (in autocommit, so no transaction stays open
while the job waits on the platform); a process that dies drops its connection and with it the lock.
A process that does not get the lock skips this run: the holder is doing the work, and the next run
reads what it recorded.

SQLite needs nothing: one process serves it (``serve --workers`` is refused there).
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable 32-bit key for ``name`` (advisory locks take a bigint)."""
    return zlib.crc32(f"siyu-bot:{name}".encode())


@contextlib.asynccontextmanager
async def only_one(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    """``async with only_one(engine, "media-refresh") as mine:`` — ``mine`` is False while another
    process holds the lock (then do nothing)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    async with engine.connect() as raw:
        conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
        got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        try:
            yield got
        finally:
            if got:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                except BaseException:
                    # never hand a pooled connection that may still hold the lock to someone else
                    await raw.invalidate()
                    log.warning("advisory lock %s: unlock failed; connection dropped", name)
                    raise
