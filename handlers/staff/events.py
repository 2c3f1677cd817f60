"""What the staff feature tells the other features (``ctx.emit``), inside the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from bot.events import DomainEvent


@dataclass(frozen=True, slots=True)
class StaffTransferFinished(DomainEvent):
    """A customer's handover reached its final state. ``status``: succeeded | refused | limit_exceeded |
    failed; ``kind``: resigned (离职继承) | onjob (在职转接); ``errcode`` when the platform refused the call
    for this customer."""

    name: ClassVar[str] = "staff.transfer_finished"
    customer_id: int | None
    external_userid: str
    kind: str
    from_userid: str
    to_userid: str
    status: str
    errcode: int | None
    transfer_id: int
    at: datetime
