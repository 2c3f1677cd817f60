"""What the customers package tells the other features (``ctx.emit``), inside the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bot.events import DomainEvent


@dataclass(frozen=True, slots=True)
class CustomerCreated(DomainEvent):
    """A person siyu-bot did not know: the row was inserted by this transaction (never for a returning one)."""

    name: ClassVar[str] = "customer.created"
    customer_id: int
    identity: str  # the column it arrived with: external_userid, openid or unionid
    value: str


@dataclass(frozen=True, slots=True)
class CustomerMerged(DomainEvent):
    """Two rows were one person (a shared unionid): ``dropped`` was folded into ``kept`` and deleted."""

    name: ClassVar[str] = "customer.merged"
    kept: int
    dropped: int
