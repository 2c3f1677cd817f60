"""Console users: made on the command line, passwords hashed with argon2id, roles mapped to API scopes.

The role decides what the console shows and allows, through the admin API's scopes
(:mod:`handlers.api.keys`): viewer → read, operator → write, admin and owner → admin.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.console.tables import ConsoleSession, ConsoleUser

ROLES = ("owner", "admin", "operator", "viewer")
SCOPE_OF_ROLE = {"viewer": "read", "operator": "write", "admin": "admin", "owner": "admin"}
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_EMAIL = 254

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY = _hasher.hash("not-a-password-of-anyone")


class UserError(ValueError):
    """A user command that cannot be done: the message is for the operator."""


def scope_of(role: str) -> str:
    return SCOPE_OF_ROLE[role]


def normal_email(email: str) -> str:
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or len(value) > MAX_EMAIL or not value.isprintable() or " " in value:
        raise UserError(f"not an email address: {email!r}")
    return value


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def password_matches(stored: str | None, password: str) -> bool:
    """Constant work whether or not the user exists; False for any malformed hash."""
    try:
        return _hasher.verify(stored or _DUMMY, password[:MAX_PASSWORD]) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def find_user(session: AsyncSession, email: str) -> ConsoleUser | None:
    return await session.scalar(select(ConsoleUser).where(ConsoleUser.email == email.strip().lower()))


async def add_user(session: AsyncSession, email: str, role: str, password: str, now: datetime) -> ConsoleUser:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    address = normal_email(email)
    if await find_user(session, address) is not None:
        raise UserError(f"a user {address!r} exists already")
    user = ConsoleUser(email=address, role=role, password_hash=hash_password(password), created_at=now)
    session.add(user)
    await session.flush()
    return user


async def list_users(session: AsyncSession) -> list[ConsoleUser]:
    return list((await session.scalars(select(ConsoleUser).order_by(ConsoleUser.id))).all())


async def _existing(session: AsyncSession, email: str) -> ConsoleUser:
    user = await find_user(session, email)
    if user is None:
        raise UserError(f"no user {email.strip().lower()!r}")
    return user


async def disable_user(session: AsyncSession, email: str, now: datetime) -> ConsoleUser:
    """Refuse sign-in from now on and end the user's sessions."""
    user = await _existing(session, email)
    if user.disabled_at is None:
        user.disabled_at = now
    await _end_sessions(session, user.id)
    return user


async def reset_password(session: AsyncSession, email: str, password: str) -> ConsoleUser:
    """A new password; every open session of the user ends."""
    user = await _existing(session, email)
    user.password_hash = hash_password(password)
    await _end_sessions(session, user.id)
    return user


async def _end_sessions(session: AsyncSession, user_id: int) -> None:
    for row in await session.scalars(select(ConsoleSession).where(ConsoleSession.user_id == user_id)):
        await session.delete(row)


DEMO_OWNER = "demo@siyu-bot.local"


async def add_demo_owner(session: AsyncSession, now: datetime) -> tuple[str, str]:
    """An owner for ``siyu-bot demo`` with a random password: (email, password), shown once by the demo."""
    password = secrets.token_urlsafe(12)
    await add_user(session, DEMO_OWNER, "owner", password, now)
    return DEMO_OWNER, password
