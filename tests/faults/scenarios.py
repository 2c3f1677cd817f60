"""The fault scenarios, shared by the fault tests (``tests/faults/test_*.py``) and ``bench/faults.py``.

Each runs real ``siyu-bot serve`` processes through :class:`~tests.faults.harness.FaultHarness` with the
shipped defaults and returns what the simulated WeChat saw (:class:`~tests.faults.harness.FaultResult`).
PostgreSQL scenarios reset the ``public`` schema of the database they are given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from tests.faults.harness import BotProcess, FaultHarness, FaultResult, host_port, reset_postgres
from tests.support.tcp_proxy import TcpProxy

N, RATE = 200, 100.0  # 200 customers at 100/s
KILL_AFTER = 1.0  # seconds into the burst


def sqlite_url(workdir: Path) -> str:
    return f"sqlite+aiosqlite:///{workdir / 'siyu.db'}"


async def baseline(workdir: Path, db_url: str | None = None, n: int = N, rate: float = RATE) -> FaultResult:
    """No fault: the harness itself must see every welcome delivered once."""
    if db_url is not None:
        await reset_postgres(db_url)
    backend = "PostgreSQL" if db_url else "SQLite"
    async with FaultHarness(workdir, db_url or sqlite_url(workdir)) as h:
        await h.prepare()
        bot = await h.spawn("a")
        burst = await h.burst(h.simulator_for(bot), n, rate)
        return await h.settle(burst, f"baseline, no fault ({backend})")


async def kill_and_restart(
    workdir: Path, n: int = N, rate: float = RATE, kill_after: float = KILL_AFTER
) -> FaultResult:
    """SQLite, one process: ``kill -9`` mid-burst, restart at once on the same port."""
    async with FaultHarness(workdir, sqlite_url(workdir)) as h:
        await h.prepare()
        bot = await h.spawn("a")
        burst = await h.burst(h.simulator_for(bot), n, rate)
        await asyncio.sleep(kill_after)
        await h.when_busy(burst)  # at once on a busy bot: a moment with acknowledged work not yet done
        bot.kill9()
        restarted = await h.spawn("a")  # same port: WeChat's retries reach it
        return await h.settle(
            burst, f"SQLite: kill -9 after {kill_after:g} s, restart", restarted_at=restarted.started_at
        )


async def kill_one_replica(
    workdir: Path, pg_url: str, n: int = N, rate: float = RATE, kill_after: float = KILL_AFTER
) -> FaultResult:
    """PostgreSQL, two replicas behind a round-robin balancer: ``kill -9`` one, never restart it."""
    await reset_postgres(pg_url)
    async with FaultHarness(workdir, pg_url) as h:
        await h.prepare()
        a, b = await h.spawn("a"), await h.spawn("b")
        burst = await h.burst(h.simulator_for(a, b), n, rate)
        await asyncio.sleep(kill_after)
        await h.when_busy(burst)
        killed_at = h.state.now()
        a.kill9()
        result = await h.settle(
            burst, f"PostgreSQL: 2 replicas, kill -9 one after {kill_after:g} s (no restart)", restarted_at=killed_at
        )
        if not b.alive:
            raise RuntimeError(f"the surviving replica died:\n{b.tail()}")
        return result


async def redis_black_hole(workdir: Path, redis_url: str, n: int = 100, seconds: float = 10.0) -> FaultResult:
    """SQLite + Redis token cache through a proxy: Redis black-holed while ``n`` customers arrive over
    ``seconds``; the process is fresh, so its access token is in Redis only (``content sync`` put it there).
    The Redis database is flushed first (no token left from an earlier run)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    with TcpProxy(*host_port(redis_url, 6379)) as proxy:
        async with FaultHarness(workdir, sqlite_url(workdir), redis_url=proxy.rewrite(redis_url)) as h:
            await h.prepare()
            bot = await h.spawn("a")
            proxy.cut()
            burst = await h.burst(h.simulator_for(bot), n, n / seconds)
            burst.in_flight_at_fault = 0  # the cut comes before the first customer
            await asyncio.sleep(seconds)
            restored_at = h.state.now()
            proxy.restore()
            return await h.settle(burst, f"Redis black-holed {seconds:g} s (SQLite)", restarted_at=restored_at)


async def postgres_outage(
    workdir: Path, pg_url: str, mode: str, n: int = N, rate: float = RATE, seconds: float = 3.0
) -> FaultResult:
    """PostgreSQL through a proxy, ``drop`` (connections reset, new ones refused) or ``cut`` (black hole)
    for ``seconds``, half a second into the burst."""
    if mode not in ("drop", "cut"):
        raise ValueError(f"mode must be drop or cut, got {mode!r}")
    await reset_postgres(pg_url)
    with TcpProxy(*host_port(pg_url, 5432)) as proxy:
        async with FaultHarness(workdir, proxy.rewrite(pg_url), migrate_url=pg_url) as h:
            await h.prepare()
            bot = await h.spawn("a")
            burst = await h.burst(h.simulator_for(bot), n, rate)
            await asyncio.sleep(0.5)
            await h.when_busy(burst)
            if mode == "drop":
                proxy.drop()
            else:
                proxy.cut()
            await asyncio.sleep(seconds)
            restored_at = h.state.now()
            proxy.restore()
            result = await h.settle(burst, f"PostgreSQL {mode} {seconds:g} s mid-burst", restarted_at=restored_at)
            if not bot.alive:
                raise RuntimeError(f"the bot died during the outage:\n{bot.tail()}")
            return result


@dataclass
class WorkersRun:
    """``serve --workers N`` after a burst: what WeChat saw, and how the receipts were handled."""

    result: FaultResult
    receipts: int  # friend_added receipts stored
    done: int  # ... of them done (all handlers committed)
    attempts: dict[int, int]  # handler transactions committed per receipt → how many receipts
    welcome_calls: int  # send_welcome_msg rows in the outbox (one per customer if each receipt ran once)
    owners: int  # distinct processes that finished receipts
    instances: int  # instance rows registered during the run (N, plus one per replaced worker)
    workers_after: int  # live workers under the master at the end (gunicorn replaces a killed one)
    reloaded: int = 0  # workers that logged a content reload after SIGHUP to the master


async def workers_burst(
    workdir: Path, pg_url: str, workers: int = 2, n: int = N, rate: float = RATE, kill_after: float | None = None
) -> WorkersRun:
    """PostgreSQL, one ``serve --workers N`` (gunicorn, one port): a burst of new friends; with ``kill_after``,
    ``kill -9`` of one worker that many seconds in (gunicorn starts a replacement)."""
    await reset_postgres(pg_url)
    async with FaultHarness(workdir, pg_url) as h:
        await h.prepare()
        bot = await h.spawn("w", serve_args=["--workers", str(workers)])
        await workers_registered(bot, pg_url, workers)
        # A worker registers its instance first and opens intake after the rest of its start-up (content,
        # platform clients, outbox): give the last one that long before the burst, or on a loaded machine
        # the first worker takes every connection and "both workers took callbacks" fails for no fault.
        await asyncio.sleep(1.5)
        burst = await h.burst(h.simulator_for(bot), n, rate)
        name = f"PostgreSQL: serve --workers {workers}"
        killed_at = None
        if kill_after is not None:
            await asyncio.sleep(kill_after)
            await h.when_busy(burst)
            killed_at = h.state.now()
            os.kill(bot.children()[0], signal.SIGKILL)
            name += f", kill -9 one worker after {kill_after:g} s"
        result = await h.settle(burst, name, restarted_at=killed_at)
        if not bot.alive:
            raise RuntimeError(f"the master died:\n{bot.tail()}")
        await _handlers_caught_up(pg_url, n)  # welcomes go out at the door; the handlers follow behind
        run = await _handled(result, pg_url, len(bot.children()))
        run.reloaded = await _reload(bot, workers)
        return run


async def _reload(bot: BotProcess, workers: int, within: float = 15.0) -> int:
    """SIGHUP to the master; how many workers reloaded the content (their WARNING line) within ``within`` s."""
    os.kill(bot.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + within
    while True:
        done = bot.log.read_text(errors="replace").count("content reloaded from")
        if done >= workers or time.monotonic() > deadline:
            return done
        await asyncio.sleep(0.2)


async def workers_registered(bot: BotProcess, pg_url: str, workers: int, within: float = 60.0) -> None:
    """Wait until every worker has started (its instance row is in): /healthz answers from the first one."""
    from sqlalchemy import func, select

    from bot.db.models import Instance

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with _engine(pg_url) as conn:
            live = await conn.scalar(select(func.count()).select_from(Instance).where(Instance.stopped_at.is_(None)))
        if (live or 0) >= workers:
            return
        if not bot.alive:
            break
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{workers} workers not registered within {within:.0f} s:\n{bot.tail()}")


async def _handlers_caught_up(pg_url: str, n: int, within: float = 90.0) -> None:
    """Until every friend_added receipt is handled (or ``within`` seconds: then the assertions say what is not)."""
    from sqlalchemy import func, select

    from bot.db.models import Receipt

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with _engine(pg_url) as conn:
            done = await conn.scalar(
                select(func.count())
                .select_from(Receipt)
                .where(Receipt.kind == "friend_added", Receipt.status == "done")
            )
        if (done or 0) >= n:
            return
        await asyncio.sleep(0.5)


async def _handled(result: FaultResult, pg_url: str, workers_after: int) -> WorkersRun:
    from sqlalchemy import func, select

    from bot.db.models import Instance, OutboxCall, Receipt

    async with _engine(pg_url) as conn:
        rows = (await conn.execute(select(Receipt.status, Receipt.attempts, Receipt.owner).where(
            Receipt.kind == "friend_added"))).all()  # fmt: skip
        welcome_calls = await conn.scalar(
            select(func.count()).select_from(OutboxCall).where(OutboxCall.api.endswith("send_welcome_msg"))
        )
        instances = await conn.scalar(select(func.count()).select_from(Instance))
    attempts: dict[int, int] = {}
    for row in rows:
        if row.status == "done":
            attempts[row.attempts] = attempts.get(row.attempts, 0) + 1
    return WorkersRun(
        result=result, receipts=len(rows), done=sum(r.status == "done" for r in rows), attempts=attempts,
        welcome_calls=welcome_calls or 0, owners=len({r.owner for r in rows if r.status == "done"}),
        instances=instances or 0, workers_after=workers_after,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _engine(url: str) -> AsyncIterator[AsyncConnection]:
    """One connection to ``url``, opened and closed with the block."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()
