"""The record of each ``siyu-bot reconcile`` run (``reconcile --history``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class ReconcileRun(Base):
    """One reconciliation: when, who started it, and what it found. ``slot`` is unique: the nightly run of
    a day (``nightly:<local date>``) is claimed by one replica only; a command's run has none."""

    __tablename__ = "reconcile_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slot: Mapped[str | None] = mapped_column(String(40), unique=True)
    trigger: Mapped[str] = mapped_column(String(16))  # command | nightly
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    customers_new: Mapped[int] = mapped_column(Integer, default=0)
    customers_lost: Mapped[int] = mapped_column(Integer, default=0)
    members_joined: Mapped[int] = mapped_column(Integer, default=0)
    members_left: Mapped[int] = mapped_column(Integer, default=0)
    tags_changed: Mapped[int] = mapped_column(Integer, default=0)
    followers_new: Mapped[int] = mapped_column(Integer, default=0)
    followers_lost: Mapped[int] = mapped_column(Integer, default=0)
    preexisting: Mapped[int] = mapped_column(Integer, default=0)  # from before siyu-bot: recorded as imported
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_reconcile_runs_started", "started_at"),)
