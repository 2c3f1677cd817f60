"""Tables of the admin API: its keys (hashed, never the key itself) and the audit log of every write."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class ApiKey(Base):
    """One admin API key: ``key_hash`` is the SHA-256 of the key (high-entropy: no slow hash needed)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))  # read | write | admin
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # never the hash either
        return f"<ApiKey {self.id} {self.name!r} {self.scope}>"


class AuditEntry(Base):
    """One write through the API: who (the key's name), what (method, path, resource), when, before/after."""

    __tablename__ = "api_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_id: Mapped[int | None] = mapped_column(BigId)
    key_name: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    resource: Mapped[str] = mapped_column(String(128))  # e.g. customer:42, receipt:7, order:A-1001
    at: Mapped[datetime]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_api_audit_at", "at"),)
