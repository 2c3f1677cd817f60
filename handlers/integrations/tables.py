"""Tables of the outbound webhooks: endpoints, one delivery per (event, endpoint), one log row per attempt."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class WebhookEndpoint(Base):
    """Where events go. ``secret`` (``whsec_…``) signs them: shown once by ``webhooks add``, kept here so
    deliveries can be signed, never logged (the worker registers it with the log scrubber), never in a repr."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON())
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    # One customer's deliveries go out one at a time, in order (the next waits until the previous is delivered).
    ordered: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The first failure since the last delivered event: disabled once this is ``disable_after_days`` old.
    failing_since: Mapped[datetime | None]

    def __repr__(self) -> str:  # never the secret (nor the URL: it may carry a token)
        return f"<WebhookEndpoint {self.id} enabled={self.enabled} events={self.events}>"


class WebhookDelivery(Base):
    """One event for one endpoint: ``pending → sending → delivered``. The ``webhook-id`` header is
    ``msg_<id>``, the same on every retry. A ``sending`` row is held by ``owner`` (bot/instances.py); a
    dead owner's row is taken over and sent again (at least once: receivers dedupe on ``webhook-id``).
    Rows of a disabled endpoint wait, pending, until it is enabled again."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(BigId)  # the ordering key of an ordered endpoint
    ordered: Mapped[bool] = mapped_column(default=False, server_default=false())  # the endpoint's, when queued
    body: Mapped[str] = mapped_column(Text)  # the exact JSON sent (and signed)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    owner: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "endpoint_id", "customer_id", "id"),
    )

    @property
    def webhook_id(self) -> str:
        return msg_id(self.id)


def msg_id(delivery_id: int) -> str:
    """The ``webhook-id`` of a delivery: stable across retries and replays."""
    return f"msg_{delivery_id}"


class WebhookAttempt(Base):
    """The log of one attempt: what the endpoint answered (or why there was no answer) and how fast."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)  # at most 500 characters
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempt"),)
