"""What the SOP engine tells the other features (``ctx.emit``), inside the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bot.events import DomainEvent


@dataclass(frozen=True, slots=True)
class DripStepSent(DomainEvent):
    """A drip step's message was queued for the platform (it goes out after the commit)."""

    name: ClassVar[str] = "drip.step_sent"
    customer_id: int
    drip_id: str
    step_id: str
    outbox_id: int | None


@dataclass(frozen=True, slots=True)
class DripStopped(DomainEvent):
    name: ClassVar[str] = "drip.stopped"
    customer_id: int
    drip_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class GroupPostConfirmed(DomainEvent):
    """The group owner sent a group-send task (WeCom reported it sent): the post reached its groups."""

    name: ClassVar[str] = "group_post.confirmed"
    fire_id: int
    post_id: str
    target: str
