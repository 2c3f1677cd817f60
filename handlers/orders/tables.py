"""Tables of the orders feature: the shop's orders, idempotent on ``order_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base, BigId


class Order(Base):
    """A paid order reported by the shop (``POST /webhooks/orders``), idempotent on ``order_id``."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(128), unique=True)
    customer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("customers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16))  # paid | refunded | …
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # money in fen: exact on every backend
    currency: Mapped[str] = mapped_column(String(8), default="CNY")
    paid_at: Mapped[datetime]
    received_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_orders_customer", "customer_id", "paid_at"),)
