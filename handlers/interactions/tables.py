"""Tables of the interactions: check-in, points, lottery (stock, tickets, draws, coupon codes), referral, kf.

Fairness and exactly-once live in constraints, not in code paths: one check-in per customer per local
day, one draw per ticket, stock taken by one conditional UPDATE, a coupon code issued once, one inviter
per invitee, and a points balance that moves only together with its ledger row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class PointsEntry(Base):
    """The points ledger. ``ref`` makes awards idempotent (``checkin:2026-11-23``, ``draw:<id>``)."""

    __tablename__ = "points_ledger"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    ref: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("customer_id", "ref", name="uq_points_ledger_customer_ref"),)


class PointsBalance(Base):
    """The running balance, updated in the same transaction as every ledger row (conditional on spend)."""

    __tablename__ = "points_balances"

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class Checkin(Base):
    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    local_day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD in the configured timezone
    checked_at: Mapped[datetime]
    streak: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # mp | kf | h5

    __table_args__ = (
        UniqueConstraint("customer_id", "local_day", name="uq_checkins_customer_day"),
        Index("ix_checkins_day", "local_day"),
    )


class LotteryCampaignState(Base):
    """Runtime state of a campaign from content: the committed seed, the kill switch."""

    __tablename__ = "lottery_campaigns"

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seed_sha256: Mapped[str] = mapped_column(String(64))  # published before the campaign opens
    seed: Mapped[str] = mapped_column(String(128))  # secret until revealed after the campaign ends
    revealed_at: Mapped[datetime | None]
    killed: Mapped[bool] = mapped_column(default=False)
    killed_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class PrizeStock(Base):
    __tablename__ = "prize_stock"

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    prize_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    initial: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)


class LotteryTicket(Base):
    """A right to one draw (daily allowance, points purchase, check-in milestone …)."""

    __tablename__ = "lottery_tickets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"))
    ref: Mapped[str] = mapped_column(String(128))  # "daily:2026-11-23:1", "milestone:7", "points:<n>"
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("campaign_id", "customer_id", "ref", name="uq_lottery_tickets_ref"),)


class Draw(Base):
    """One draw, unique per ticket. ``seq`` and ``roll`` let anyone recompute it from the revealed seed."""

    __tablename__ = "draws"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(BigId, unique=True)
    customer_id: Mapped[int] = mapped_column(BigId)
    seq: Mapped[int] = mapped_column(BigId)  # position in the campaign's draw sequence
    roll: Mapped[str] = mapped_column(String(64))  # HMAC(seed, campaign:seq:ticket) hex, the draw's randomness
    prize_id: Mapped[str | None] = mapped_column(String(64))  # None: no prize (or stock ran out)
    coupon_code: Mapped[str | None] = mapped_column(String(128))
    drawn_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("campaign_id", "seq", name="uq_draws_campaign_seq"),
        Index("ix_draws_customer", "campaign_id", "customer_id", "drawn_at"),
    )


class CouponCode(Base):
    """A code imported from a pool CSV; issued at most once."""

    __tablename__ = "coupon_codes"

    pool_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(BigId)
    issued_at: Mapped[datetime | None]
    ref: Mapped[str | None] = mapped_column(String(128), unique=True)  # what it was issued for (draw:<id>)

    __table_args__ = (Index("ix_coupon_codes_free", "pool_id", "issued_at"),)


class ReferralCode(Base):
    """A customer's personal invite code (their own 联系我 ``state`` or OA QR scene)."""

    __tablename__ = "referral_codes"

    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(30), unique=True)
    platform: Mapped[str] = mapped_column(String(16))  # wecom_friend | mp
    remote_id: Mapped[str | None] = mapped_column(String(128))  # config_id or QR ticket
    qr_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Referral(Base):
    """An invitee credited to an inviter: held → released | revoked | rejected (with the reason)."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    invitee_id: Mapped[int] = mapped_column(BigId, unique=True)  # one inviter per invitee, ever
    inviter_id: Mapped[int] = mapped_column(BigId)
    arrived_at: Mapped[datetime]
    release_after: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_referrals_inviter", "inviter_id", "state"),
        Index("ix_referrals_due", "state", "release_after"),
    )


class KfCursor(Base):
    """``kf/sync_msg`` cursor per customer-service account (docs/platform.md#wecom-kf)."""

    __tablename__ = "kf_cursors"

    open_kfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(256), default="")
    updated_at: Mapped[datetime]
