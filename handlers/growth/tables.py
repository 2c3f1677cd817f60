"""Tables of the growth loop: touches (attribution), welcomes, losses, groups, tags, synced platform objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class Touch(Base):
    """One arrival of a customer through a door. The first touch per customer has ``first = True``."""

    __tablename__ = "touches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    channel_code: Mapped[str | None] = mapped_column(String(64))  # None = unattributed
    raw_key: Mapped[str | None] = mapped_column(String(128))  # State / scene as the platform sent it
    platform: Mapped[str] = mapped_column(String(16))  # wecom_friend | wecom_group | mp
    action: Mapped[str] = mapped_column(String(24))  # friend_added | followed | scanned | group_joined
    staff_userid: Mapped[str | None] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    first: Mapped[bool] = mapped_column(default=False)
    occurred_at: Mapped[datetime]
    receipt_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (
        Index("ix_touches_channel_time", "channel_code", "occurred_at"),
        Index("ix_touches_customer", "customer_id"),
        Index("ix_touches_time", "occurred_at"),  # stats over a period (the console's overview)
        # One touch per receipt and member: a re-run of a group join cannot double-count.
        UniqueConstraint("receipt_id", "customer_id", name="uq_touches_receipt_customer"),
    )


class Welcome(Base):
    """A welcome decided for an arrival: which channel and A/B variant, and how it went out."""

    __tablename__ = "welcomes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    channel_code: Mapped[str | None] = mapped_column(String(64))
    variant_ref: Mapped[str | None] = mapped_column(String(128))  # message/variant
    via: Mapped[str] = mapped_column(String(16))  # send_welcome_msg | passive_reply | none
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    # queued | sent | expired | failed | skipped (no welcome_code, no message) — the outbox row's state
    # is the truth for queued welcomes; stats read it through outbox_id.
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    receipt_id: Mapped[int | None] = mapped_column(BigId, unique=True)

    __table_args__ = (
        Index("ix_welcomes_channel", "channel_code", "created_at"),
        Index("ix_welcomes_created", "created_at"),  # stats over a period (the console's overview)
    )


class Loss(Base):
    """A relationship that ended (churn), with the channel the relationship came from."""

    __tablename__ = "losses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    channel_code: Mapped[str | None] = mapped_column(String(64))
    # customer_deleted_staff | staff_deleted_customer | unfollowed | left_group
    kind: Mapped[str] = mapped_column(String(24))
    staff_userid: Mapped[str | None] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    receipt_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (
        Index("ix_losses_channel_time", "channel_code", "occurred_at"),
        Index("ix_losses_customer", "customer_id"),
        Index("ix_losses_time", "occurred_at"),
        UniqueConstraint("receipt_id", "customer_id", name="uq_losses_receipt_customer"),
    )


class GroupChat(Base):
    """A WeCom customer group as last read from ``groupchat/get`` (the platform is the truth)."""

    __tablename__ = "group_chats"

    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    owner: Mapped[str | None] = mapped_column(String(64))
    notice: Mapped[str | None] = mapped_column(Text)
    member_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime | None]
    dismissed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class GroupMember(Base):
    __tablename__ = "group_members"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(64), ForeignKey("group_chats.chat_id", ondelete="CASCADE"))
    member_id: Mapped[str] = mapped_column(String(64))  # userid (type 1) or external_userid (type 2)
    member_type: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(BigId)
    unionid: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(64))
    channel_code: Mapped[str | None] = mapped_column(String(64))
    join_scene: Mapped[int | None] = mapped_column(Integer)
    invitor: Mapped[str | None] = mapped_column(String(64))  # member_list[].invitor.userid
    joined_at: Mapped[datetime | None]
    left_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (UniqueConstraint("chat_id", "member_id", name="uq_group_members_chat_member"),)


class CustomerTag(Base):
    """Tag membership (``group/name``), kept in an indexable shape for segments later."""

    __tablename__ = "customer_tags"

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(96), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # channel:<code> | operator | campaign:<id> …
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_customer_tags_tag", "tag", "customer_id"),)


class SyncedObject(Base):
    """A platform object created from content (tag, 联系我 code, join way, QR code, template).

    ``fingerprint`` is a hash of the desired configuration: ``content sync`` writes only when it changed.
    """

    __tablename__ = "platform_objects"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    remote_id: Mapped[str | None] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class WeComRelation(Base):
    """A customer's friendship with one staff member: a customer may be friends with several."""

    __tablename__ = "wecom_relations"

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    staff_userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel_code: Mapped[str | None] = mapped_column(String(64))
    added_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)


class ImportCheckpoint(Base):
    """Where ``siyu-bot import`` is in one platform list (its cursor), committed with the rows of each
    page: a crash resumes after the last stored page. Deleted when an import completes."""

    __tablename__ = "import_checkpoints"

    list_name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[str] = mapped_column(Text, default="")
    done: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime]
