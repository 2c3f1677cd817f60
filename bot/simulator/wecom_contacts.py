"""WeCom customer APIs: welcome message, customer detail, tagging
(docs/platform.md#welcome-messages, #group-detail, #corp-tags).

Reminder from docs/platform.md#customer-events: changes made through these APIs never produce callbacks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.simulator.api import (
    GET,
    INVALID_EXTERNAL_USERID,
    INVALID_PARAM,
    INVALID_TAG_ID,
    INVALID_USERID,
    NO_EXTERNAL_RELATION,
    ApiError,
    ApiRequest,
    Route,
    need_str,
    str_list,
)
from bot.simulator.models import ExternalContact, FollowUser
from bot.simulator.wecom_media import check_media_ids

if TYPE_CHECKING:
    from bot.simulator.state import SimState

WELCOME_CODE_TTL = timedelta(seconds=20)
MAX_ATTACHMENTS = 9
MAX_CORP_TAGS = 3000
# One alternative set of required fields per attachment msgtype
# (docs/platform.md#welcome-messages; "image" takes either).
_ATTACHMENT_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "image": (("media_id",), ("pic_url",)),
    "link": (("title", "url"),),
    "miniprogram": (("title", "pic_media_id", "appid", "page"),),
    "video": (("media_id",),),
    "file": (("media_id",),),
}
_BYTE_LIMITS = {("link", "title"): 128, ("link", "desc"): 512, ("miniprogram", "title"): 64}


def check_text(body: dict[str, Any], limit_bytes: int = 4000) -> str:
    """``text.content`` (optional); over the limit → 45002 (limit 4000 bytes, unconfirmed,
    docs/platform.md#welcome-messages)."""
    text = body.get("text")
    if text is None:
        return ""
    content = text.get("content") if isinstance(text, dict) else None
    if not isinstance(content, str):
        raise ApiError(INVALID_PARAM, "text.content must be a string")
    if len(content.encode()) > limit_bytes:
        raise ApiError(45002, "content size out of limit")
    return content


def check_attachments(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate ``attachments``
    (docs/platform.md#welcome-messages, #group-send-tasks): ≤ 9, known msgtype (else 41065), required fields."""
    items = body.get("attachments", [])
    if not isinstance(items, list):
        raise ApiError(INVALID_PARAM, "attachments must be a list")
    if len(items) > MAX_ATTACHMENTS:
        raise ApiError(INVALID_PARAM, f"attachments exceed {MAX_ATTACHMENTS}")
    for item in items:
        msgtype = item.get("msgtype") if isinstance(item, dict) else None
        if not isinstance(msgtype, str) or msgtype not in _ATTACHMENT_FIELDS:
            raise ApiError(41065, "invalid attachment type")
        inner = item.get(msgtype)
        if not isinstance(inner, dict) or not any(
            all(isinstance(inner.get(k), str) and inner.get(k) for k in alt) for alt in _ATTACHMENT_FIELDS[msgtype]
        ):
            raise ApiError(INVALID_PARAM, f"invalid {msgtype} attachment")
        for (kind, key), limit in _BYTE_LIMITS.items():
            value = inner.get(key)
            if kind == msgtype and isinstance(value, str) and len(value.encode()) > limit:
                raise ApiError(INVALID_PARAM, f"{msgtype}.{key} exceeds {limit} bytes")
    return items


def send_welcome_msg(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/send_welcome_msg`` (docs/platform.md#welcome-messages, [W:92137]).

    The code is valid for 20 s after the add event and works once. Errcodes: 41049 missing code;
    41050 "无效的欢迎语code" for an unknown **or expired** code — the global errcode table's hint for
    41050 reads "welcome_code具有时效性，须在添加好友后20秒内使用" ([W:90313]), which makes it the
    documented answer for expiry (docs/platform.md#welcome-messages); 41051 "externaluser has started
    chatting" for a code already used. A code is valid while less than 20 s have passed (strict).
    An invalid body does not consume the code. Attachment media ids must come from ``media/upload``
    and be less than 3 days old (40007, :func:`bot.simulator.wecom_media.check_media_ids`).
    """
    code_value = need_str(req.body, "welcome_code", 41049)
    content = check_text(req.body)
    attachments = check_attachments(req.body)
    if not content and not attachments:
        raise ApiError(INVALID_PARAM, "text and attachments can not both be empty")
    check_media_ids(state, attachments)
    code = state.welcome_codes.get(code_value)
    if code is None:
        raise ApiError(41050, "invalid welcome code")
    if code.used:
        raise ApiError(41051, "externaluser has started chatting")
    if state.now() - code.issued_at >= WELCOME_CODE_TTL:
        raise ApiError(41050, "invalid welcome code")
    code.used = True
    state.contacts[code.external_userid].welcomes.append(dict(req.body))
    return {}


def _relation(state: SimState, userid: str, external_userid: str) -> tuple[ExternalContact, FollowUser]:
    if userid not in state.staff:
        raise ApiError(INVALID_USERID, "invalid userid")
    contact = state.contacts.get(external_userid)
    if contact is None:
        raise ApiError(INVALID_EXTERNAL_USERID, "invalid external userid")
    follow = contact.follow.get(userid)
    if follow is None or not follow.active:
        raise ApiError(NO_EXTERNAL_RELATION, "not external contact")
    return contact, follow


def _follow_json(state: SimState, f: FollowUser) -> dict[str, Any]:
    tags = []
    for tag_id in f.tag_ids:
        tag = state.tags[tag_id]
        group = state.tag_groups[tag.group_id]
        tags.append({"group_name": group.group_name, "tag_name": tag.name, "tag_id": tag.id, "type": 1})
    out: dict[str, Any] = {
        "userid": f.userid,
        "remark": f.remark,
        "description": f.description,
        "createtime": f.createtime,
        "tags": tags,
        "add_way": f.add_way,
        "oper_userid": f.oper_userid,
    }
    if f.state is not None:
        out["state"] = f.state
    return out


def get_contact(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``GET externalcontact/get?external_userid=`` ([W:96315]): 41035 missing, 40096 unknown, 84061
    when no member follows the customer any more. ``follow_user[].state`` carries the channel
    (docs/platform.md#group-detail)."""
    ext = req.query.get("external_userid")
    if not ext:
        raise ApiError(41035, "missing external userid")
    contact = state.contacts.get(ext)
    if contact is None:
        raise ApiError(INVALID_EXTERNAL_USERID, "invalid external userid")
    follows = [f for f in contact.follow.values() if f.active]
    if not follows:
        raise ApiError(NO_EXTERNAL_RELATION, "not external contact")
    follow_user = [_follow_json(state, f) for f in follows]
    return {"external_contact": contact_json(contact), "follow_user": follow_user, "next_cursor": ""}


def contact_json(contact: ExternalContact) -> dict[str, Any]:
    """``external_contact`` as ``externalcontact/get`` and ``batch/get_by_user`` answer it."""
    info: dict[str, Any] = {
        "external_userid": contact.external_userid,
        "name": contact.name,
        "type": contact.type,
        "gender": contact.gender,
        "avatar": "",
    }
    if contact.unionid:
        info["unionid"] = contact.unionid
    return info


def mark_tag(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/mark_tag`` ([W:92697],
    docs/platform.md#corp-tags): the customer must follow ``userid`` (84061); tags
    must exist (40068); add/remove not both empty; ≤ 3000 tags per (member, customer)."""
    b = req.body
    _, follow = _relation(state, need_str(b, "userid", 41009), need_str(b, "external_userid", 41035))
    add, remove = str_list(b, "add_tag"), str_list(b, "remove_tag")
    if not add and not remove:
        raise ApiError(INVALID_PARAM, "add_tag and remove_tag can not both be empty")
    if any(t not in state.tags for t in add + remove):
        raise ApiError(INVALID_TAG_ID, "invalid tagid")
    tags = [t for t in follow.tag_ids if t not in remove]
    tags += [t for t in add if t not in tags]
    if len(tags) > MAX_CORP_TAGS:
        raise ApiError(INVALID_PARAM, "too many tags on this customer")
    follow.tag_ids = tags
    return {}


ROUTES = {
    "externalcontact/send_welcome_msg": Route(send_welcome_msg),
    "externalcontact/get": Route(get_contact, GET),
    "externalcontact/mark_tag": Route(mark_tag),
}
