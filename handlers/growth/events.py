"""What the growth feature tells the other features (``ctx.emit``), inside the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from bot.events import DomainEvent


@dataclass(frozen=True, slots=True)
class CustomerTouched(DomainEvent):
    """An arrival through a door: a WeCom friend add, an OA follow or scan, a group join (``channel`` is None
    when unattributed). ``first`` when it is the customer's first touch ever."""

    name: ClassVar[str] = "customer.touched"
    customer_id: int
    channel: str | None
    platform: str  # wecom_friend | wecom_group | mp
    action: str  # friend_added | followed | scanned | group_joined
    first: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class CustomerLost(DomainEvent):
    """A relationship ended: the customer deleted a staff member, was deleted, unfollowed or left a group."""

    name: ClassVar[str] = "customer.lost"
    customer_id: int
    channel: str | None
    kind: str  # customer_deleted_staff | staff_deleted_customer | unfollowed | left_group
    at: datetime


@dataclass(frozen=True, slots=True)
class ArrivalDiscovered(DomainEvent):
    """An arrival that happened while no callback reached us, found by ``siyu-bot reconcile``: never
    welcomed (the welcome_code is gone); drips with ``late_entry`` start from ``at`` (the discovery)."""

    name: ClassVar[str] = "customer.arrival_discovered"
    customer_id: int
    channel: str | None
    platform: str  # wecom_friend | wecom_group | mp
    at: datetime


@dataclass(frozen=True, slots=True)
class TagsChanged(DomainEvent):
    """Tags added to the customer by siyu-bot (a channel's tags); ``added`` are ``group/name`` refs."""

    name: ClassVar[str] = "customer.tags_changed"
    customer_id: int
    added: tuple[str, ...]
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupMemberJoined(DomainEvent):
    name: ClassVar[str] = "group.member_joined"
    chat_id: str
    member_id: str
    customer_id: int | None  # None for a staff member


@dataclass(frozen=True, slots=True)
class GroupMemberLeft(DomainEvent):
    name: ClassVar[str] = "group.member_left"
    chat_id: str
    member_id: str
    customer_id: int | None


@dataclass(frozen=True, slots=True)
class MpFollowed(DomainEvent):
    """The Official Account gained (or regained) this follower; ``scene`` is the QR ``scene_str`` if any."""

    name: ClassVar[str] = "mp.followed"
    customer_id: int
    openid: str
    channel: str | None
    scene: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class MpUnfollowed(DomainEvent):
    name: ClassVar[str] = "mp.unfollowed"
    customer_id: int
    openid: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CustomerWrote(DomainEvent):
    """A customer wrote to the Official Account (a text, an image, a voice …)."""

    name: ClassVar[str] = "message.received"
    customer_id: int
    openid: str
    msgtype: str
    text: str | None
    at: datetime
