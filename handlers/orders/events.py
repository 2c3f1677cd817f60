"""What the orders feature tells the other features (``ctx.emit``), inside the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from bot.events import DomainEvent


@dataclass(frozen=True, slots=True)
class OrderRecorded(DomainEvent):
    """A paid order recorded for the first time (a repeated ``order.paid`` is not recorded again)."""

    name: ClassVar[str] = "order.recorded"
    customer_id: int
    order_id: str
    amount_cents: int
    paid_at: datetime
