"""Token stores (SQLite, PostgreSQL, Redis) and the single-flight TokenManager.

PostgreSQL runs when ``SIYU_TEST_DATABASE_URL`` is set (the table lives in a throw-away schema);
Redis runs when ``SIYU_TEST_REDIS_URL`` is set (keys under a unique prefix, deleted afterwards).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text

from bot.clock import FrozenClock
from bot.config import DatabaseConfig, DatabaseURL
from bot.db.engine import make_engine, sessionmaker
from bot.db.models import Base
from bot.platform import CachedToken, DbTokenStore, RedisTokenStore, TokenManager, TokenStore, TokenUnavailable
from tests.kernel.fake_platform import START, sqlite_token_store


class SignallingClock(FrozenClock):
    """A frozen clock that also tells the test when someone started waiting on it."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.set()
        await super().sleep(seconds)


@pytest.fixture
def clock() -> SignallingClock:
    return SignallingClock(START)


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[DbTokenStore]:
    async with sqlite_token_store(tmp_path / "tokens.db", clock) as store:
        yield store


@pytest.fixture
async def postgres_store(clock: FrozenClock) -> AsyncIterator[DbTokenStore]:
    url = os.environ.get("SIYU_TEST_DATABASE_URL")
    if not url:
        pytest.skip("SIYU_TEST_DATABASE_URL is not set")
    engine = make_engine(DatabaseConfig(url=DatabaseURL(url), pool_size=0))
    schema = f"siyu_platform_test_{uuid.uuid4().hex[:10]}"
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = engine.execution_options(schema_translate_map={None: schema})
    async with scoped.begin() as conn:
        table = Base.metadata.tables["access_tokens"]
        await conn.run_sync(lambda sync_conn: table.create(sync_conn))
    try:
        yield DbTokenStore(sessionmaker(scoped), clock)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


@pytest.fixture
async def redis_store(clock: FrozenClock) -> AsyncIterator[RedisTokenStore]:
    url = os.environ.get("SIYU_TEST_REDIS_URL")
    if not url:
        pytest.skip("SIYU_TEST_REDIS_URL is not set")
    client = aioredis.from_url(url)
    prefix = f"siyu-test:{uuid.uuid4().hex}:"
    try:
        yield RedisTokenStore(client, clock, prefix=prefix)
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store(request: pytest.FixtureRequest) -> TokenStore:
    store: TokenStore = request.getfixturevalue(f"{request.param}_store")
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def db_store(request: pytest.FixtureRequest) -> DbTokenStore:
    store: DbTokenStore = request.getfixturevalue(f"{request.param}_store")
    return store


async def test_put_get_roundtrip(store: TokenStore, clock: FrozenClock) -> None:
    assert await store.get("wecom:c:1") is None
    expires = clock.now() + timedelta(seconds=6900)
    await store.put("wecom:c:1", "T1", expires)
    await store.put("wecom:c:1", "T2", expires + timedelta(seconds=1))
    assert await store.get("wecom:c:1") == CachedToken("T2", expires + timedelta(seconds=1))


async def test_invalidate_only_clears_the_same_token(store: TokenStore, clock: FrozenClock) -> None:
    expires = clock.now() + timedelta(hours=1)
    await store.put("k", "NEW", expires)
    await store.invalidate("k", "OLD")
    assert (await store.get("k")) == CachedToken("NEW", expires)
    await store.invalidate("k", "NEW")
    assert await store.get("k") is None


async def test_lease_is_exclusive_until_released(store: TokenStore) -> None:
    assert await store.try_lease("k", "a", 30)
    assert not await store.try_lease("k", "b", 30)
    assert not await store.try_lease("k", "a", 30)
    await store.release("k", "b")  # not b's lease: no effect
    assert not await store.try_lease("k", "b", 30)
    await store.release("k", "a")
    assert await store.try_lease("k", "b", 30)


async def test_lease_does_not_touch_the_token(store: TokenStore, clock: FrozenClock) -> None:
    expires = clock.now() + timedelta(hours=1)
    await store.put("k", "T", expires)
    assert await store.try_lease("k", "a", 30)
    await store.release("k", "a")
    assert await store.get("k") == CachedToken("T", expires)


async def test_db_lease_expires_with_the_clock(db_store: DbTokenStore, clock: FrozenClock) -> None:
    store = db_store
    assert await store.try_lease("k", "crashed-replica", 30)
    clock.advance(29)
    assert not await store.try_lease("k", "b", 30)
    clock.advance(1)
    assert await store.try_lease("k", "b", 30)


async def test_db_concurrent_leases_one_winner(db_store: DbTokenStore) -> None:
    results = await asyncio.gather(*(db_store.try_lease("race", f"owner{i}", 30) for i in range(8)))
    assert results.count(True) == 1


def test_cached_token_repr_hides_the_token() -> None:
    assert "SECRET-TOKEN" not in repr(CachedToken("SECRET-TOKEN", datetime(2025, 1, 1, tzinfo=UTC)))


class Fetcher:
    """A token endpoint the test controls: counts calls and can hold a fetch open."""

    def __init__(self, expires_in: int = 7200) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.expires_in = expires_in

    async def __call__(self) -> tuple[str, int]:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return f"T{self.calls}", self.expires_in


async def test_manager_single_flight_in_process(sqlite_store: DbTokenStore, clock: FrozenClock) -> None:
    fetch = Fetcher()
    manager = TokenManager(sqlite_store, fetch, "k", clock)
    assert await asyncio.gather(*(manager.get() for _ in range(20))) == ["T1"] * 20
    assert fetch.calls == 1


async def test_lease_loser_waits_for_the_winner(store: TokenStore, clock: SignallingClock) -> None:
    fetch_a, fetch_b = Fetcher(), Fetcher()
    fetch_a.release.clear()
    replica_a = TokenManager(store, fetch_a, "k", clock)
    replica_b = TokenManager(store, fetch_b, "k", clock)
    task_a = asyncio.create_task(replica_a.get())
    await fetch_a.started.wait()  # a holds the lease now
    task_b = asyncio.create_task(replica_b.get())
    await clock.slept.wait()  # b lost the lease and is polling the store
    fetch_a.release.set()
    assert list(await asyncio.gather(task_a, task_b)) == ["T1", "T1"]
    assert fetch_b.calls == 0


async def test_waiting_gives_up_when_the_lease_is_held(sqlite_store: DbTokenStore, clock: FrozenClock) -> None:
    assert await sqlite_store.try_lease("k", "stuck-replica", 3600)
    fetch = Fetcher()
    with pytest.raises(TokenUnavailable) as info:
        await TokenManager(sqlite_store, fetch, "k", clock).get()
    assert fetch.calls == 0 and not info.value.final


async def test_refresh_replaces_only_the_bad_token(sqlite_store: DbTokenStore, clock: FrozenClock) -> None:
    fetch = Fetcher()
    manager = TokenManager(sqlite_store, fetch, "k", clock)
    assert await manager.get() == "T1"
    assert await manager.refresh("T1") == "T2"
    assert await manager.refresh("T1") == "T2"  # a late caller with the old token: no second fetch
    assert fetch.calls == 2
    other = TokenManager(sqlite_store, Fetcher(), "k", clock)
    assert await other.get() == "T2"


async def test_short_lived_tokens_keep_half_their_life(sqlite_store: DbTokenStore, clock: FrozenClock) -> None:
    fetch = Fetcher(expires_in=400)  # stable_token may return as little as 300 s
    manager = TokenManager(sqlite_store, fetch, "k", clock)
    await manager.get()
    clock.advance(199)
    await manager.get()
    assert fetch.calls == 1
    clock.advance(2)
    await manager.get()
    assert fetch.calls == 2
