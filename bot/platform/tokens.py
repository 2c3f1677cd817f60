"""Access tokens shared by every replica, refreshed single-flight.

Why shared: an Official Account refresh can invalidate the previous token
(docs/platform.md#oa-tokens-and-quotas) and WeCom blocks a
corp that calls ``gettoken`` too often
(docs/platform.md#wecom-tokens), so replicas must not each keep their own token. The
token lives in the database (``access_tokens``) or Redis; a short *lease* in the same store lets only
one replica fetch a new token while the others wait for it to appear.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db.models import AccessToken
from bot.logs import remember_secret
from bot.platform.errors import TokenUnavailable

TokenFetcher = Callable[[], Awaitable[tuple[str, int]]]


@dataclass(frozen=True)
class CachedToken:
    """A token and the moment replicas stop using it (the refresh margin is already applied)."""

    token: str = field(repr=False)
    expires_at: datetime


class TokenStore(Protocol):
    """Where replicas share tokens and the refresh lease."""

    async def get(self, key: str) -> CachedToken | None: ...

    async def put(self, key: str, token: str, expires_at: datetime) -> None: ...

    async def try_lease(self, key: str, owner: str, seconds: float) -> bool:
        """Take the lease on ``key`` for ``seconds`` unless anyone (even ``owner``) holds it."""
        ...

    async def release(self, key: str, owner: str) -> None: ...

    async def invalidate(self, key: str, token: str) -> None:
        """Forget the stored token, but only if it still equals ``token`` (no lost updates)."""
        ...


class DbTokenStore:
    """Tokens in the ``access_tokens`` table; the lease is one conditional upsert (SQLite and PostgreSQL)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock

    async def get(self, key: str) -> CachedToken | None:
        async with self._sessionmaker() as session:
            row = (
                await session.execute(select(AccessToken.token, AccessToken.expires_at).where(AccessToken.key == key))
            ).first()
        if row is None or not row.token:
            return None
        return CachedToken(row.token, row.expires_at)

    async def put(self, key: str, token: str, expires_at: datetime) -> None:
        async with self._sessionmaker() as session, session.begin():
            insert = _insert_for(session)
            stmt = insert(AccessToken).values(key=key, token=token, expires_at=expires_at)
            stmt = stmt.on_conflict_do_update(
                index_elements=[AccessToken.key], set_={"token": token, "expires_at": expires_at}
            )
            await session.execute(stmt)

    async def try_lease(self, key: str, owner: str, seconds: float) -> bool:
        now = self._clock.now()
        until = now + timedelta(seconds=seconds)
        lease = {"refresh_lease_until": until, "refresh_owner": owner}
        async with self._sessionmaker() as session, session.begin():
            insert = _insert_for(session)
            stmt = insert(AccessToken).values(key=key, token="", expires_at=now, **lease)
            stmt = stmt.on_conflict_do_update(
                index_elements=[AccessToken.key],
                set_=lease,
                where=or_(AccessToken.refresh_lease_until.is_(None), AccessToken.refresh_lease_until <= now),
            )
            result: CursorResult[Any] = await session.execute(stmt)  # type: ignore[assignment]
            return result.rowcount == 1

    async def release(self, key: str, owner: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(AccessToken)
                .where(AccessToken.key == key, AccessToken.refresh_owner == owner)
                .values(refresh_lease_until=None, refresh_owner=None)
            )

    async def invalidate(self, key: str, token: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                update(AccessToken)
                .where(AccessToken.key == key, AccessToken.token == token)
                .values(token="", expires_at=self._clock.now())
            )


def _insert_for(session: AsyncSession) -> Any:
    """The dialect's ``insert`` (both offer ``on_conflict_do_update`` with the same arguments)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


_INVALIDATE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """Tokens as Redis hashes that expire with the token; the lease is ``SET NX PX``."""

    def __init__(self, redis: aioredis.Redis, clock: Clock, prefix: str = "siyu:token:") -> None:
        self._redis = redis
        self._clock = clock
        self._prefix = prefix

    async def get(self, key: str) -> CachedToken | None:
        raw = await self._redis.hgetall(self._prefix + key)
        values = {_text(k): _text(v) for k, v in raw.items()}
        if not values.get("token") or "expires_at" not in values:
            return None
        return CachedToken(values["token"], datetime.fromisoformat(values["expires_at"]))

    async def put(self, key: str, token: str, expires_at: datetime) -> None:
        # A relative TTL: Redis time and the injected clock may differ (frozen clocks in tests).
        ttl_ms = max(1, int((expires_at - self._clock.now()).total_seconds() * 1000))
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"token": token, "expires_at": expires_at.isoformat()})
            pipe.pexpire(name, ttl_ms)
            await pipe.execute()

    async def try_lease(self, key: str, owner: str, seconds: float) -> bool:
        ok = await self._redis.set(self._lock(key), owner, nx=True, px=max(1, int(seconds * 1000)))
        return bool(ok)

    async def release(self, key: str, owner: str) -> None:
        await self._redis.eval(_RELEASE, 1, self._lock(key), owner)

    async def invalidate(self, key: str, token: str) -> None:
        await self._redis.eval(_INVALIDATE, 1, self._prefix + key, token)

    def _lock(self, key: str) -> str:
        return f"{self._prefix}{key}:lease"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class TokenManager:
    """One token key: cached in process, shared through the store, refreshed by one replica at a time.

    ``margin`` is how long before the platform's expiry replicas stop using a token (default 5 min,
    halved for short-lived tokens so the margin never swallows the whole lifetime).
    """

    def __init__(
        self,
        store: TokenStore,
        fetch: TokenFetcher,
        key: str,
        clock: Clock,
        *,
        margin: float = 300.0,
        # The refresh lease guards a token fetch (4 s timeout, PlatformClient.TOKEN_TIMEOUT). If its holder
        # dies, the others wait at most twice this — short enough for a 20-second welcome_code.
        lease_seconds: float = 5.0,
        poll_interval: float = 0.25,
    ) -> None:
        self.key = key
        self.owner = uuid.uuid4().hex
        self._store = store
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self._lock = asyncio.Lock()
        self._local: CachedToken | None = None

    async def get(self) -> str:
        """A token that is valid now (fetching one if no replica has a fresh one)."""
        local = self._local
        if local is not None and self._fresh(local):
            return local.token
        async with self._lock:
            local = self._local
            if local is not None and self._fresh(local):
                return local.token
            return await self._load_or_fetch()

    async def refresh(self, bad_token: str) -> str:
        """After a TokenInvalid: drop ``bad_token`` everywhere and return a newer token.

        If another in-process call or replica already replaced it, that token is returned and no fetch
        happens (the store is re-read first).
        """
        async with self._lock:
            local = self._local
            if local is not None and local.token != bad_token and self._fresh(local):
                return local.token
            self._local = None
            await self._store.invalidate(self.key, bad_token)
            return await self._load_or_fetch()

    async def _load_or_fetch(self) -> str:
        deadline = self._clock.now() + timedelta(seconds=self._lease_seconds * 2)
        while True:
            stored = await self._fresh_stored()
            if stored is not None:
                return stored
            if await self._store.try_lease(self.key, self.owner, self._lease_seconds):
                try:
                    # Double check: a replica may have stored a token between our read and the lease.
                    return await self._fresh_stored() or await self._fetch_and_store()
                finally:
                    await self._store.release(self.key, self.owner)
            if self._clock.now() >= deadline:
                raise TokenUnavailable(self.key)
            await self._clock.sleep(self._poll_interval)

    async def _fresh_stored(self) -> str | None:
        stored = await self._store.get(self.key)
        if stored is None or not self._fresh(stored):
            return None
        remember_secret(stored.token, rotates=True)  # fetched by another replica: still never to be logged here
        self._local = stored
        return stored.token

    async def _fetch_and_store(self) -> str:
        token, expires_in = await self._fetch()
        remember_secret(token, rotates=True)  # before storing it: a failing store write must not log it either
        expires_at = self._clock.now() + timedelta(seconds=self._usable_seconds(expires_in))
        await self._store.put(self.key, token, expires_at)
        self._local = CachedToken(token, expires_at)
        return token

    def _usable_seconds(self, expires_in: int) -> float:
        if expires_in >= 2 * self._margin:
            return expires_in - self._margin
        return max(1.0, expires_in / 2)

    def _fresh(self, token: CachedToken) -> bool:
        return self._clock.now() < token.expires_at
