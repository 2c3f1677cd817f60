"""API keys: made and revoked on the command line, stored as SHA-256 hashes, checked in constant time.

A key is ``siyu_`` + 32 random bytes (url-safe base64): with that much entropy a plain SHA-256 is as good as
a slow password hash, and it lets the lookup be one indexed read. The key is printed once by
``api-keys create`` and never stored, logged or shown again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.api.tables import ApiKey

PREFIX = "siyu_"
SCOPES = ("read", "write", "admin")  # each includes the ones before it
MAX_NAME = 64


class KeyError_(ValueError):
    """A key command that cannot be done (duplicate name, unknown key): the message is for the operator."""


def rank(scope: str) -> int:
    return SCOPES.index(scope)


def allows(granted: str, needed: str) -> bool:
    return rank(granted) >= rank(needed)


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's row id, name and scope (never the key); ``via_key`` is False for a console
    user acting through the same functions (``id`` is then the user's, not a key's)."""

    id: int
    name: str
    scope: str
    via_key: bool = True


async def authenticate(session: AsyncSession, presented: str) -> Caller | None:
    """The live key whose hash matches ``presented``, compared in constant time; None otherwise."""
    if not presented.startswith(PREFIX) or len(presented) > 128:
        return None
    digest = key_hash(presented)
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Caller(row.id, row.name, row.scope)


async def create_key(session: AsyncSession, name: str, scope: str, now: datetime) -> str:
    """Store a new key named ``name``; returns the key (the only time it exists in clear)."""
    if scope not in SCOPES:
        raise KeyError_(f"scope must be one of {', '.join(SCOPES)}")
    if not name or len(name) > MAX_NAME or not name.isprintable() or name.isdigit():
        raise KeyError_(f"name must be 1-{MAX_NAME} printable characters, not only digits")
    if await session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise KeyError_(f"a key named {name!r} exists already (names stay taken after a revoke)")
    key = new_key()
    session.add(ApiKey(name=name, scope=scope, key_hash=key_hash(key), created_at=now))
    return key


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def revoke_key(session: AsyncSession, name_or_id: str, now: datetime) -> ApiKey:
    where = [ApiKey.name == name_or_id]
    if name_or_id.isdigit():
        where.append(ApiKey.id == int(name_or_id))
    row = await session.scalar(select(ApiKey).where(or_(*where)).order_by(ApiKey.id).limit(1))
    if row is None:
        raise KeyError_(f"no key named or numbered {name_or_id!r}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


async def touch(session: AsyncSession, key_id: int, now: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
