"""Typed events: what the platform told us, normalised, with WeCom's field names in snake case.

``from_fields`` turns a parsed callback (a flat dict from :func:`bot.wechat.parse_xml`) into one of
these frozen dataclasses. Unknown kinds become :class:`UnknownEvent` — stored and acknowledged, never
dropped. ``dedup_key`` follows
docs/platform.md#timeouts-retries-and-dedup: ``MsgId`` for messages, the identifying fields for
events (never ``FromUserName + CreateTime`` alone: WeCom customer events all come from ``sys``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Platform = Literal["wecom", "mp", "shop"]


@dataclass(frozen=True, slots=True)
class Event:
    """Fields every callback has. ``raw`` is the full parsed payload (for audit and unknown fields)."""

    kind: ClassVar[str] = "event"
    platform: Platform
    account: str  # ToUserName: CorpID (WeCom) or the gh_ original id (Official Account)
    create_time: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    def key_parts(self) -> tuple[Any, ...]:
        return (json.dumps(self.raw, sort_keys=True, ensure_ascii=False),)

    @property
    def dedup_key(self) -> str:
        msg_id = self.raw.get("MsgId") or self.raw.get("MsgID")
        parts: tuple[Any, ...] = ("msg", str(msg_id)) if msg_id else (self.kind, *self.key_parts())
        canonical = "\x1f".join(str(p) for p in (self.platform, self.account, *parts))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Something a feature did — a customer created, a draw won — told to the other features inside the
    same transaction (:meth:`bot.context.Context.emit`). Features define their own; ``name`` is the stable
    dotted name an integration sees (``customer.created``). Never stored as a receipt."""

    name: ClassVar[str] = "domain"


# --- WeCom: customer contact (change_external_contact) --------------------------------------


@dataclass(frozen=True, slots=True)
class _ContactEvent(Event):
    user_id: str
    external_userid: str

    def key_parts(self) -> tuple[Any, ...]:
        r = self.raw
        return (
            r.get("ChangeType"),
            self.user_id,
            self.external_userid,
            self.create_time,
            r.get("WelcomeCode"),
        )


@dataclass(frozen=True, slots=True)
class FriendAdded(_ContactEvent):
    """add_external_contact / add_half_external_contact (``half``: added without verification yet)."""

    kind: ClassVar[str] = "friend_added"
    state: str | None
    welcome_code: str | None
    half: bool = False


@dataclass(frozen=True, slots=True)
class FriendEdited(_ContactEvent):
    kind: ClassVar[str] = "friend_edited"


@dataclass(frozen=True, slots=True)
class FriendRemovedByStaff(_ContactEvent):
    """del_external_contact: the staff member deleted the customer (``source`` DELETE_BY_TRANSFER …)."""

    kind: ClassVar[str] = "friend_removed_by_staff"
    source: str | None


@dataclass(frozen=True, slots=True)
class FriendLost(_ContactEvent):
    """del_follow_user: the customer deleted the staff member."""

    kind: ClassVar[str] = "friend_lost"


@dataclass(frozen=True, slots=True)
class TransferFailed(_ContactEvent):
    kind: ClassVar[str] = "transfer_failed"
    fail_reason: str | None


@dataclass(frozen=True, slots=True)
class ChatArchiveApproved(_ContactEvent):
    kind: ClassVar[str] = "chat_archive_approved"
    welcome_code: str | None


# --- WeCom: customer groups (change_external_chat) -------------------------------------------


@dataclass(frozen=True, slots=True)
class _GroupEvent(Event):
    chat_id: str

    def key_parts(self) -> tuple[Any, ...]:
        r = self.raw
        return (
            self.chat_id,
            r.get("ChangeType"),
            r.get("UpdateDetail"),
            self.create_time,
            r.get("CurMemVer"),
        )


@dataclass(frozen=True, slots=True)
class GroupCreated(_GroupEvent):
    kind: ClassVar[str] = "group_created"


@dataclass(frozen=True, slots=True)
class GroupDismissed(_GroupEvent):
    kind: ClassVar[str] = "group_dismissed"


@dataclass(frozen=True, slots=True)
class GroupChanged(_GroupEvent):
    """update with change_owner / change_name / change_notice (or a detail we don't know yet)."""

    kind: ClassVar[str] = "group_changed"
    update_detail: str


@dataclass(frozen=True, slots=True)
class _MembershipEvent(_GroupEvent):
    mem_change_cnt: int
    member_ids: tuple[str, ...]
    last_mem_ver: str | None
    cur_mem_ver: str | None


@dataclass(frozen=True, slots=True)
class GroupMembersJoined(_MembershipEvent):
    """``join_scene``: 0 invited by a member (direct or link), 3 scanned the group QR code."""

    kind: ClassVar[str] = "group_members_joined"
    join_scene: int | None


@dataclass(frozen=True, slots=True)
class GroupMembersLeft(_MembershipEvent):
    """``quit_scene``: 0 left by themselves, 1 removed by the owner/admin."""

    kind: ClassVar[str] = "group_members_left"
    quit_scene: int | None


@dataclass(frozen=True, slots=True)
class CorpTagChanged(Event):
    kind: ClassVar[str] = "corp_tag_changed"
    tag_id: str
    tag_type: str | None  # tag | tag_group; absent for shuffle
    change_type: str
    strategy_id: str | None

    def key_parts(self) -> tuple[Any, ...]:
        return (self.tag_id, self.tag_type, self.change_type, self.create_time, self.strategy_id)


@dataclass(frozen=True, slots=True)
class KfMessagesPending(Event):
    """kf_msg_or_event: a thin notifier; pull with kf/sync_msg using ``token`` (valid 10 min)."""

    kind: ClassVar[str] = "kf_messages_pending"
    token: str
    open_kfid: str

    def key_parts(self) -> tuple[Any, ...]:
        return (self.open_kfid, self.token, self.create_time)


@dataclass(frozen=True, slots=True)
class AppMessageReceived(Event):
    """A member wrote to our WeCom app (text or other message types)."""

    kind: ClassVar[str] = "app_message_received"
    from_user: str
    msg_type: str
    content: str | None
    agent_id: str | None


# --- Official Account -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MpEvent(Event):
    openid: str

    def key_parts(self) -> tuple[Any, ...]:
        r = self.raw
        return (self.openid, self.create_time, r.get("Event"), r.get("EventKey"))


@dataclass(frozen=True, slots=True)
class Followed(_MpEvent):
    """subscribe; ``scene`` is the QR scene (``qrscene_`` stripped) when the follow came from a code."""

    kind: ClassVar[str] = "followed"
    scene: str | None
    ticket: str | None


@dataclass(frozen=True, slots=True)
class Scanned(_MpEvent):
    """SCAN: an existing follower scanned a parametric QR code."""

    kind: ClassVar[str] = "scanned"
    scene: str
    ticket: str | None


@dataclass(frozen=True, slots=True)
class Unfollowed(_MpEvent):
    kind: ClassVar[str] = "unfollowed"


@dataclass(frozen=True, slots=True)
class MenuClicked(_MpEvent):
    kind: ClassVar[str] = "menu_clicked"
    key: str


@dataclass(frozen=True, slots=True)
class MenuLinkOpened(_MpEvent):
    kind: ClassVar[str] = "menu_link_opened"
    url: str


@dataclass(frozen=True, slots=True)
class TextReceived(_MpEvent):
    kind: ClassVar[str] = "text_received"
    content: str


@dataclass(frozen=True, slots=True)
class MessageReceived(_MpEvent):
    """Any other Official Account message (image, voice, video, location, link …)."""

    kind: ClassVar[str] = "message_received"
    msg_type: str


# --- The brand's shop (order webhook, not WeChat) --------------------------------------------


@dataclass(frozen=True, slots=True)
class _OrderEvent(Event):
    """An order reported by the shop. The customer is named by any of unionid, openid, external_userid."""

    order_id: str
    amount_cents: int
    currency: str
    unionid: str | None
    openid: str | None
    external_userid: str | None

    def key_parts(self) -> tuple[Any, ...]:
        return (self.kind, self.order_id)  # idempotent on the order id (per kind: paid, then refunded)


@dataclass(frozen=True, slots=True)
class OrderPaid(_OrderEvent):
    """Paid orders stop drips (goal reached) and update purchase facts; ``create_time`` is the paid time."""

    kind: ClassVar[str] = "order_paid"


@dataclass(frozen=True, slots=True)
class OrderRefunded(_OrderEvent):
    kind: ClassVar[str] = "order_refunded"


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    """Anything we have no type for yet: stored and acknowledged, handled by nobody."""

    kind: ClassVar[str] = "unknown"
    name: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        FriendAdded, FriendEdited, FriendRemovedByStaff, FriendLost, TransferFailed, ChatArchiveApproved,
        GroupCreated, GroupDismissed, GroupChanged, GroupMembersJoined, GroupMembersLeft, CorpTagChanged,
        KfMessagesPending, AppMessageReceived, Followed, Scanned, Unfollowed, MenuClicked, MenuLinkOpened,
        TextReceived, MessageReceived, OrderPaid, OrderRefunded, UnknownEvent,
    )
}  # fmt: skip
