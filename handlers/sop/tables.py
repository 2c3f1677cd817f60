"""Tables of the SOP engine: drip enrolments and their due steps, group-post fires, the contact ledger, orders.

Per-customer timers are rows with ``due_at`` claimed by a frequent poll (docs/operations.md, "Scheduling"), never one
scheduler job per customer. A group-post fire is a row unique on (post, fire time, target), so several
replicas produce one send. Every automated message, sent or not, leaves a ledger row with its reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class DripEnrolment(Base):
    """A customer on one drip. One enrolment per (customer, drip): a finished drip is not restarted."""

    __tablename__ = "drip_enrolments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    drip_id: Mapped[str] = mapped_column(String(64))
    anchor_at: Mapped[datetime]  # the trigger time every step delay counts from
    state: Mapped[str] = mapped_column(String(12), default="active")  # active | stopped | completed
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None]
    receipt_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (
        UniqueConstraint("customer_id", "drip_id", name="uq_drip_enrolments_customer_drip"),
        Index("ix_drip_enrolments_drip_state", "drip_id", "state"),
    )


class DripStepRun(Base):
    """One step of one enrolment, due at ``due_at``.

    pending → sent | skipped | missed | cancelled. A deferral (quiet hours, caps) keeps the row
    ``pending`` with ``due_at`` moved (the poll's partial index covers pending rows only); waiting for
    an Official Account window keeps ``due_at`` and pushes ``claimed_until``. ``reason`` says why.
    """

    __tablename__ = "drip_steps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[int] = mapped_column(BigId, ForeignKey("drip_enrolments.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigId)
    drip_id: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None]
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("enrolment_id", "step_id", name="uq_drip_steps_enrolment_step"),
        # The poll reads only due pending rows: a partial index keeps it an index range scan at 1M rows.
        Index(
            "ix_drip_steps_due_pending",
            "due_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_drip_steps_customer", "customer_id"),
    )


class GroupFire(Base):
    """One fire of a group post for one target (an owner's batch of groups, or one group)."""

    __tablename__ = "group_fires"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[str] = mapped_column(String(64))
    fire_at: Mapped[datetime]
    target: Mapped[str] = mapped_column(String(128))  # "owner:<userid>" | "chat:<chat_id>" | "robot:<chat_id>"
    delivery: Mapped[str] = mapped_column(String(24))
    # pending → queued (outbox) → sent (task created / delivered) → confirmed | unconfirmed | failed;
    # or missed | skipped. The fire marker row (target "post") goes firing → done | missed.
    state: Mapped[str] = mapped_column(String(12), default="pending")
    chat_ids: Mapped[dict[str, Any]]  # {"chat_ids": [...]} the groups this fire covers
    reason: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    msgid: Mapped[str | None] = mapped_column(String(128))  # add_msg_template's msgid, for results/reminders
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # When the follow-up check (get_groupmsg_task / get_groupmsg_send_result) is next due, for "sent" tasks.
    next_check_at: Mapped[datetime | None]
    # {"chats": {chat_id: send status 0-3}, "reminded": [iso times of remind_groupmsg_send]}
    results: Mapped[dict[str, Any] | None]

    __table_args__ = (
        UniqueConstraint("post_id", "fire_at", "target", name="uq_group_fires_post_fire_target"),
        Index("ix_group_fires_state", "state", "fire_at"),
        Index("ix_group_fires_check", "state", "next_check_at"),
    )


class ContactLedger(Base):
    """Every automated message for a customer or a group — sent, deferred or skipped — with its reason.

    The budget (quiet hours, per-day caps, the platform's monthly group-send quota) is computed from here.
    """

    __tablename__ = "contact_ledger"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int | None] = mapped_column(BigId)
    chat_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    category: Mapped[str] = mapped_column(String(16))
    delivery: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(128))  # "drip:<id>/<step>" | "post:<id>"
    outcome: Mapped[str] = mapped_column(String(12))  # sent | deferred | skipped
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_contact_ledger_customer_at", "customer_id", "at"),
        Index("ix_contact_ledger_chat_at", "chat_id", "at"),
    )


class MpWindow(Base):
    """The Official Account customer-service windows of one follower
    (docs/platform.md#customer-service-messages), kept by us.

    ``message_*``: the user's last message opens 5 sends / 48 h; ``event_*``: the last follow, scan or
    menu click opens 3 sends / 1 minute. ``*_sent`` counts what our automation queued since then
    (see :mod:`handlers.sop.mp_windows` for why this is a table and not derived from receipts).
    """

    __tablename__ = "mp_windows"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_at: Mapped[datetime | None]
    message_sent: Mapped[int] = mapped_column(Integer, default=0)
    event_at: Mapped[datetime | None]
    event_sent: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]
