"""Tables of the callback core: inbox receipts, outbox calls, shared access tokens, customers.

Business features add their own modules of models (``bot/db/<feature>.py``) on the same ``Base``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Index, Integer, LargeBinary, MetaData, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.db.types import UTCDateTime

# BigInteger on PostgreSQL, INTEGER (rowid alias, autoincrement) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Receipt(Base):
    """One callback as received: claimed (committed) before WeChat gets its 200."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    platform: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(48))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]
    # pending → done | failed. A pending row is held by ``owner`` (the instance that stored or took it);
    # the sweeper re-dispatches it once the owner is dead, or — owner NULL after a failed run — once
    # ``lease_until`` (the retry time) has passed.
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime]
    owner: Mapped[str | None] = mapped_column(String(32))
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_receipts_status_lease", "status", "lease_until"),
        Index("ix_receipts_received_at", "received_at"),
    )


class OutboxCall(Base):
    """One platform call to make: pending → sending → sent | failed | expired | uncertain.

    ``uncertain``: the call may have reached the platform but its answer was lost, and the API is not
    safe to repeat (bot/platform/repeat.py): it is never re-sent.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    receipt_id: Mapped[int | None] = mapped_column(BigId)
    platform: Mapped[str] = mapped_column(String(8))
    api: Mapped[str] = mapped_column(String(96))
    payload: Mapped[dict[str, Any]]
    priority: Mapped[int] = mapped_column(Integer, default=100)  # lower runs first
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    deadline_at: Mapped[datetime | None]  # e.g. welcome_code + 20 s: past it the call is expired
    lease_until: Mapped[datetime | None]  # unused since instances hold rows (kept for old rows)
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    owner: Mapped[str | None] = mapped_column(String(32))  # the instance performing a ``sending`` call
    # An earlier attempt may have reached the platform (answer lost): a later 41051 means delivered, and
    # a final failure is ``uncertain`` rather than ``failed``.
    maybe_sent: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at", "priority"),)


class Instance(Base):
    """A running siyu-bot process. Rows it holds (receipts, outbox calls) name it as ``owner``; when its
    heartbeat stops, or it stopped, or its pid is gone from this host, the rows are free at once."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))  # hostname + pid namespace: where ``pid`` means something
    pid: Mapped[int] = mapped_column(Integer)
    pid_started: Mapped[str] = mapped_column(String(32))  # /proc start time: a reused pid is not us
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]


class AccessToken(Base):
    """Platform access tokens shared by every replica; ``refresh_lease_until`` makes refresh single-flight."""

    __tablename__ = "access_tokens"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime]
    refresh_lease_until: Mapped[datetime | None]
    refresh_owner: Mapped[str | None] = mapped_column(String(64))


class Customer(Base):
    """One person however many doors they came through (WeCom external contact, OA follower)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_userid: Mapped[str | None] = mapped_column(String(64), unique=True)
    openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    unionid: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    wecom_friend: Mapped[bool] = mapped_column(default=False)
    mp_follower: Mapped[bool] = mapped_column(default=False)
    name: Mapped[str | None] = mapped_column(String(128))  # WeChat nickname from externalcontact/get
    first_channel: Mapped[str | None] = mapped_column(String(64))  # first touch; None = unattributed
    first_touch_at: Mapped[datetime | None]
    # Purchases reported by the order webhook: the inputs of RFM layers.
    purchase_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_purchase_at: Mapped[datetime | None]
    total_spent_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # in fen


class ContentRevision(Base):
    """One version of the whole content directory: ``draft`` (being edited), ``published`` (was or is live).

    ``digest`` is the SHA-256 over every file's path and bytes: pushing the same directory twice makes no
    new revision. Which one is in force is :class:`ContentLive`, not a state here, so switching (publish,
    roll back) is one UPDATE of one row.
    """

    __tablename__ = "content_revisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    parent_id: Mapped[int | None] = mapped_column(BigId)  # the revision a draft started from
    state: Mapped[str] = mapped_column(String(16))  # draft | published | discarded
    digest: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    published_by: Mapped[str | None] = mapped_column(String(128))


class ContentRevisionFile(Base):
    """A file of a revision: a path relative to the content directory and its bytes (TOML, images)."""

    __tablename__ = "content_revision_files"

    revision_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ContentLive(Base):
    """The one row naming the revision in force; every replica polls it and switches all at once."""

    __tablename__ = "content_live"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    revision_id: Mapped[int] = mapped_column(BigId)
    switched_at: Mapped[datetime]
    switched_by: Mapped[str] = mapped_column(String(128))
