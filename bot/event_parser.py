"""Build typed events from parsed callback fields (docs/platform.md#customer-events for WeCom,
docs/platform.md#official-account for the Official Account).

Every field is bounded here, at the door. A correctly signed callback can still carry an absurd field
(a 40 KB ExternalUserID): it would be acknowledged and stored, then fail in every handler run against
``String(64)`` columns. It can never become valid, so it is refused with a 400 naming the field and its
length (never its value) and nothing is stored. WeChat retries a non-200 at most three times
(docs/platform.md#timeouts-retries-and-dedup), each a cheap rejection counted in
``siyu_callbacks_total{outcome="rejected_400"}``; a 400
rather than "ack and record as failed" because the receipt itself could not hold such a value.
"""

from __future__ import annotations

from typing import Any

from bot.events import (
    AppMessageReceived,
    ChatArchiveApproved,
    CorpTagChanged,
    Event,
    Followed,
    FriendAdded,
    FriendEdited,
    FriendLost,
    FriendRemovedByStaff,
    GroupChanged,
    GroupCreated,
    GroupDismissed,
    GroupMembersJoined,
    GroupMembersLeft,
    KfMessagesPending,
    MenuClicked,
    MenuLinkOpened,
    MessageReceived,
    Platform,
    Scanned,
    TextReceived,
    TransferFailed,
    Unfollowed,
    UnknownEvent,
)
from bot.wechat import CallbackRejected

# Longest value accepted per field, in characters. Identifiers: WeCom userid is 1–64 bytes, openid 28,
# external_userid ~32, chat ids ≤ 32, CorpID/gh_ ids < 20; the database keeps them in String(64).
# WeCom ``state`` is ≤ 30 chars (contact_way) but 获客链接 channels and reported platform values exceed
# it, so 64 (its column). Menu CLICK keys are ≤ 128 bytes, OA scene_str ≤ 64 (plus "qrscene_").
_ID = 64
_SHORT = 128  # codes, tokens, type names, reasons, numbers
_LIMITS: dict[str, int] = {
    "ToUserName": _ID,
    "FromUserName": _ID,
    "UserID": _ID,
    "ExternalUserID": _ID,
    "ChatId": _ID,
    "State": _ID,
    "OpenKfId": _ID,
    "LastMemVer": _ID,
    "CurMemVer": _ID,
    "Item": _ID,  # MemChangeList members: userids / external_userids
    "CreateTime": 20,
    "Content": 16_384,  # user text; WeChat's own inputs stop far below
    "EventKey": 1_024,  # a VIEW event's key is the menu URL (≤ 1024 bytes); other kinds are checked below
    "Ticket": 256,  # OA QR tickets are ~96 characters
    **dict.fromkeys(
        (
            *("WelcomeCode", "Token", "Id", "TagType", "StrategyId", "ChangeType", "UpdateDetail", "Event"),
            *("MsgType", "AgentID", "Source", "FailReason", "MsgId", "MsgID", "MemChangeCnt", "JoinScene", "QuitScene"),
        ),
        _SHORT,
    ),
}
_SHORT_EVENT_KEY = _SHORT  # CLICK key (≤ 128 bytes), "qrscene_" + scene_str (≤ 64)


def _bounded(key: str, value: str, limit: int | None = None) -> str:
    limit = limit or _LIMITS.get(key, _SHORT)
    if len(value) > limit:
        raise CallbackRejected(400, f"field {key} is longer than {limit} characters ({len(value)})")
    return value


def _s(fields: dict[str, Any], key: str, limit: int | None = None) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallbackRejected(400, f"field {key} must be text")
    return _bounded(key, value, limit)


def _req(fields: dict[str, Any], key: str) -> str:
    value = _s(fields, key)
    if value is None:
        raise CallbackRejected(400, f"missing field {key}")
    return value


def _int(fields: dict[str, Any], key: str) -> int | None:
    value = _s(fields, key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise CallbackRejected(400, f"field {key} must be an integer") from None


def _items(fields: dict[str, Any], key: str) -> tuple[str, ...]:
    """``<MemChangeList><Item>a</Item><Item>b</Item></MemChangeList>`` → ("a", "b")."""
    value = fields.get(key)
    if not isinstance(value, dict):
        return ()
    items = value.get("Item")
    if isinstance(items, str):
        return (_bounded("Item", items),)
    if isinstance(items, list):
        return tuple(_bounded("Item", i) for i in items if isinstance(i, str))
    return ()


def from_fields(platform: Platform, fields: dict[str, Any]) -> Event:
    """Normalise one decrypted callback. Raises :class:`CallbackRejected` for malformed payloads."""
    for key, value in fields.items():  # known fields are bounded even in events we do not model (kept in ``raw``)
        if key in _LIMITS and isinstance(value, str):
            _bounded(key, value)
    create_time = _int(fields, "CreateTime")
    if create_time is None:
        raise CallbackRejected(400, "missing field CreateTime")
    base: dict[str, Any] = {
        "platform": platform,
        "account": _s(fields, "ToUserName") or "",
        "create_time": create_time,
        "raw": fields,
    }
    msg_type = (_s(fields, "MsgType") or "").lower()
    if msg_type == "event":
        name = _req(fields, "Event")
        if platform == "wecom":
            return _wecom_event(name, fields, base)
        return _mp_event(name, fields, base)
    if platform == "wecom":
        return AppMessageReceived(
            **base,
            from_user=_req(fields, "FromUserName"),
            msg_type=msg_type,
            content=_s(fields, "Content"),
            agent_id=_s(fields, "AgentID"),
        )
    openid = _req(fields, "FromUserName")
    if msg_type == "text":
        return TextReceived(**base, openid=openid, content=_s(fields, "Content") or "")
    return MessageReceived(**base, openid=openid, msg_type=msg_type or "unknown")


def _wecom_event(name: str, fields: dict[str, Any], base: dict[str, Any]) -> Event:
    lowered = name.lower()
    if lowered == "change_external_contact":
        return _contact_event(fields, base)
    if lowered == "change_external_chat":
        return _group_event(fields, base)
    if lowered == "change_external_tag":
        return CorpTagChanged(
            **base,
            tag_id=_req(fields, "Id"),
            tag_type=_s(fields, "TagType"),
            change_type=_req(fields, "ChangeType"),
            strategy_id=_s(fields, "StrategyId"),
        )
    if lowered == "kf_msg_or_event":
        return KfMessagesPending(**base, token=_req(fields, "Token"), open_kfid=_req(fields, "OpenKfId"))
    return UnknownEvent(**base, name=name)


def _contact_event(fields: dict[str, Any], base: dict[str, Any]) -> Event:
    change = _req(fields, "ChangeType")
    if change not in _CONTACT_CHANGES:
        return UnknownEvent(**base, name=f"change_external_contact/{change}")
    who = {**base, "user_id": _req(fields, "UserID"), "external_userid": _req(fields, "ExternalUserID")}
    if change in ("add_external_contact", "add_half_external_contact"):
        return FriendAdded(
            **who,
            state=_s(fields, "State") or None,
            welcome_code=_s(fields, "WelcomeCode") or None,
            half=change == "add_half_external_contact",
        )
    if change == "edit_external_contact":
        return FriendEdited(**who)
    if change == "del_external_contact":
        return FriendRemovedByStaff(**who, source=_s(fields, "Source"))
    if change == "del_follow_user":
        return FriendLost(**who)
    if change == "transfer_fail":
        return TransferFailed(**who, fail_reason=_s(fields, "FailReason"))
    return ChatArchiveApproved(**who, welcome_code=_s(fields, "WelcomeCode"))


_CONTACT_CHANGES = {
    "add_external_contact",
    "add_half_external_contact",
    "edit_external_contact",
    "del_external_contact",
    "del_follow_user",
    "transfer_fail",
    "msg_audit_approved",
}


def _group_event(fields: dict[str, Any], base: dict[str, Any]) -> Event:
    change = _req(fields, "ChangeType")
    chat = {**base, "chat_id": _req(fields, "ChatId")}
    if change == "create":
        return GroupCreated(**chat)
    if change == "dismiss":
        return GroupDismissed(**chat)
    if change != "update":
        return UnknownEvent(**base, name=f"change_external_chat/{change}")
    detail = _req(fields, "UpdateDetail")
    if detail in ("add_member", "del_member"):
        membership = {
            **chat,
            "mem_change_cnt": _int(fields, "MemChangeCnt") or 0,
            "member_ids": _items(fields, "MemChangeList"),
            "last_mem_ver": _s(fields, "LastMemVer"),
            "cur_mem_ver": _s(fields, "CurMemVer"),
        }
        if detail == "add_member":
            return GroupMembersJoined(**membership, join_scene=_int(fields, "JoinScene"))
        return GroupMembersLeft(**membership, quit_scene=_int(fields, "QuitScene"))
    return GroupChanged(**chat, update_detail=detail)


def _mp_event(name: str, fields: dict[str, Any], base: dict[str, Any]) -> Event:
    openid = _req(fields, "FromUserName")
    mp = {**base, "openid": openid}
    key = _s(fields, "EventKey", None if name == "VIEW" else _SHORT_EVENT_KEY) or ""
    if name == "subscribe":
        scene = key[len("qrscene_") :] if key.startswith("qrscene_") else None
        return Followed(**mp, scene=scene or None, ticket=_s(fields, "Ticket"))
    if name == "SCAN":
        return Scanned(**mp, scene=key, ticket=_s(fields, "Ticket"))
    if name == "unsubscribe":
        return Unfollowed(**mp)
    if name == "CLICK":
        return MenuClicked(**mp, key=key)
    if name == "VIEW":
        return MenuLinkOpened(**mp, url=key)
    return UnknownEvent(**base, name=name)
