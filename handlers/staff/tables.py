"""Tables of staff changes: one row per customer per handover, group handovers, the audit trail of every
transfer command, the staff directory read from ``user/get``, and loss alerts waiting for their send."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId

# requested → waiting → succeeded | refused | limit_exceeded | failed
FINAL_STATES = ("succeeded", "refused", "limit_exceeded", "failed")


class StaffTransfer(Base):
    """One customer handed over from one member to another (``kind`` resigned = 离职继承, onjob = 在职转接)."""

    __tablename__ = "staff_transfers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch: Mapped[str] = mapped_column(String(32))  # the command that asked for it (staff_audit.batch)
    kind: Mapped[str] = mapped_column(String(8))
    from_userid: Mapped[str] = mapped_column(String(64))
    to_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(BigId)
    state: Mapped[str] = mapped_column(String(16), default="requested")
    status: Mapped[int | None] = mapped_column(Integer)  # transfer_result status (1..4) last read
    errcode: Mapped[int | None] = mapped_column(Integer)  # the call's per-customer errcode when refused
    reason: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    requested_at: Mapped[datetime]
    takeover_at: Mapped[datetime | None]  # expected (waiting) or actual (succeeded) takeover time
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_staff_transfers_state", "state", "kind", "from_userid", "to_userid"),
        Index("ix_staff_transfers_customer", "external_userid"),
    )


class StaffGroupTransfer(Base):
    """One customer group handed to a new owner (``groupchat/transfer`` or ``groupchat/onjob_transfer``)."""

    __tablename__ = "staff_group_transfers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    chat_id: Mapped[str] = mapped_column(String(64))
    from_userid: Mapped[str] = mapped_column(String(64))
    to_userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="requested")  # requested | succeeded | failed
    errcode: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    requested_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_staff_group_transfers_batch", "batch"),)


class StaffAudit(Base):
    """Every transfer command as it was given, with what it planned (a dry run changes nothing, so it is not here)."""

    __tablename__ = "staff_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch: Mapped[str] = mapped_column(String(32), unique=True)
    command: Mapped[str] = mapped_column(String(16))  # transfer | handover
    from_userid: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(256))  # "to:V" | "same-department" | "round-robin:V1,V2"
    customers: Mapped[int] = mapped_column(Integer, default=0)
    groups: Mapped[int] = mapped_column(Integer, default=0)
    plan: Mapped[dict[str, Any]]  # successor → counts
    at: Mapped[datetime]


class StaffMember(Base):
    """A member as ``user/get`` last showed them (the department survives their departure here)."""

    __tablename__ = "staff_members"

    userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    departments: Mapped[dict[str, Any]]  # {"ids": [1, 2]}
    updated_at: Mapped[datetime]


class LossAlert(Base):
    """A customer deleted a member (客户流失提醒): told at once (outside quiet hours) or in the daily digest."""

    __tablename__ = "staff_loss_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    staff_userid: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(BigId)
    receipt_id: Mapped[int | None] = mapped_column(BigId, unique=True)
    lost_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(12), default="pending")  # pending | queued
    outbox_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (Index("ix_staff_loss_alerts_pending", "state", "staff_userid"),)
