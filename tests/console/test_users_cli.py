"""``siyu-bot users add|list|disable|reset-password``: argon2 hashes, passwords from stdin, sessions ended."""

from __future__ import annotations

import asyncio
import io
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.config import DatabaseConfig, DatabaseURL
from bot.db.engine import make_engine, sessionmaker
from handlers import main
from handlers.console.tables import ConsoleSession, ConsoleUser
from handlers.console.users import password_matches


def _run(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def _users(url: str) -> list[ConsoleUser]:
    async def read() -> list[ConsoleUser]:
        engine = make_engine(DatabaseConfig(url=DatabaseURL(url)))
        try:
            async with sessionmaker(engine)() as s:
                return list((await s.scalars(select(ConsoleUser).order_by(ConsoleUser.id))).all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_users_commands(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", sqlite_url)
    assert _run(monkeypatch, ["users", "add", "Lulu@Example.com", "--role", "operator"], "first passphrase\n") == 0
    assert "added lulu@example.com as operator" in capsys.readouterr().out
    [user] = _users(sqlite_url)
    assert user.password_hash.startswith("$argon2id$") and "first passphrase" not in repr(user)
    assert password_matches(user.password_hash, "first passphrase")
    assert _run(monkeypatch, ["users", "add", "lulu@example.com", "--role", "viewer"], "another one!\n") == 1
    assert "exists already" in capsys.readouterr().out
    assert _run(monkeypatch, ["users", "add", "not-an-email", "--role", "viewer"], "long enough pw\n") == 1
    assert _run(monkeypatch, ["users", "add", "x@example.com", "--role", "viewer"], "short\n") == 1
    assert "10 to 1024" in capsys.readouterr().out and len(_users(sqlite_url)) == 1
    assert _run(monkeypatch, ["users", "reset-password", "lulu@example.com"], "second passphrase\n") == 0
    assert password_matches(_users(sqlite_url)[0].password_hash, "second passphrase")
    assert _run(monkeypatch, ["users", "disable", "lulu@example.com"]) == 0
    assert _run(monkeypatch, ["users", "disable", "nobody@example.com"]) == 1
    capsys.readouterr()
    assert _run(monkeypatch, ["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "lulu@example.com" in listing and "operator" in listing and "$argon2" not in listing
    assert _users(sqlite_url)[0].disabled_at is not None
    with pytest.raises(SystemExit):
        _run(monkeypatch, ["users", "add", "y@example.com", "--role", "superuser"], "long enough pw\n")


def test_sessions_end_with_a_disable(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", sqlite_url)
    assert _run(monkeypatch, ["users", "add", "a@example.com", "--role", "admin"], "a long passphrase\n") == 0

    async def sessions(add: bool) -> int:
        engine = make_engine(DatabaseConfig(url=DatabaseURL(sqlite_url)))
        try:
            async with sessionmaker(engine)() as s, s.begin():
                if add:
                    now = datetime.now(UTC)
                    s.add(ConsoleSession(token_hash="h" * 64, user_id=1, csrf="c", created_at=now,
                                         expires_at=now + timedelta(hours=1)))  # fmt: skip
                    await s.flush()
                return len((await s.scalars(select(ConsoleSession))).all())
        finally:
            await engine.dispose()

    assert asyncio.run(sessions(add=True)) == 1
    assert _run(monkeypatch, ["users", "disable", "a@example.com"]) == 0
    assert asyncio.run(sessions(add=False)) == 0
