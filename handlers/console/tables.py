"""Tables of the console: its users (argon2 password hashes) and their sign-in sessions (hashed tokens)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class ConsoleUser(Base):
    """Someone who signs in to the console; ``role`` is owner | admin | operator | viewer."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # never the hash
        return f"<ConsoleUser {self.id} {self.email!r} {self.role}>"


class ConsoleSession(Base):
    """One signed-in browser: the cookie holds a random token, the row its SHA-256 and the CSRF token."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("console_users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_console_sessions_user", "user_id"),)

    def __repr__(self) -> str:
        return f"<ConsoleSession {self.id} user={self.user_id}>"
