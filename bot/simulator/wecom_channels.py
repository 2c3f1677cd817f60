"""WeCom channel codes and group detail (docs/platform.md#channel-codes).

* 联系我 ``add/get/update/del_contact_way`` ([W:96348]): ``type`` 1|2 (41037 missing, 41039 bad),
  ``scene`` 1|2 (41038 missing, 41040 bad), ``state`` and ``remark`` ≤ 30 chars (40058 "不合法的参数"),
  type 1 takes exactly one user, ≤ 100 users (41041), ``config_id`` 41043 missing / 41044 unknown;
  ``qr_code`` only for scene 2; ``expires_in`` ≤ 14 days.
* 加入群聊 ``groupchat/add/get/update_join_way`` ([W:99547]): ``scene`` 1|2, 1–5 ``chat_id_list``,
  ``state`` ≤ 30, ``room_base_name`` ≤ 40, ``remark`` truncated after 30 chars (as documented).
  The docs name no errcode for a bad join-way field or ``config_id``: we answer 40058.
* ``groupchat/get`` ([W:96338]): unknown chat → 40050 "chatid不存在", dismissed → 49008 "群已经解散".
* ``qr_code``: WeCom answers the URL of an *image* of the code on its image host (wework.qpic.cn). The
  simulator answers a URL on itself, ``<scheme://host of the call>/wwpic/<id>.png``, and serves a real
  PNG there (:func:`qr_image`), so ``siyu-bot channels qr`` can download it as it does from WeCom.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import segno

from bot.simulator.api import (
    CHAT_NOT_FOUND,
    INVALID_PARAM,
    INVALID_USERID,
    ApiError,
    ApiRequest,
    Route,
    need_str,
    opt_int,
    opt_str,
    str_list,
)
from bot.simulator.models import ChannelCode, GroupChat, GroupMember

if TYPE_CHECKING:
    from bot.simulator.state import SimState

STATE_MAX = 30
MAX_TEMP_SECONDS = 14 * 86400
_CONTACT_WAY_EDITABLE = (
    "style",
    "remark",
    "skip_verify",
    "state",
    "user",
    "party",
    "expires_in",
    "chat_expires_in",
    "unionid",
    "conclusions",
    "mark_source",
)


def _new_config_id(state: SimState) -> str:
    return "".join(state.rng.choice("0123456789abcdef") for _ in range(32))


def _qr(state: SimState, origin: str) -> str:
    if not origin:  # called without an HTTP request: the shape of WeCom's own image URLs
        return f"https://wework.qpic.cn/wwpic/{state.rng.randrange(10**11, 10**12)}_{state.new_id('', 12)}/0"
    return f"{origin}/wwpic/{state.rng.randrange(10**11, 10**12)}_{state.new_id('', 12)}.png"


def qr_payload(state: SimState, name: str) -> str | None:
    """What the QR image ``/wwpic/<name>`` encodes — **simulator-only**, a plausible stand-in: WeCom does
    not document the content of its codes. 「联系我」 → ``https://work.weixin.qq.com/ca/<config_id>``,
    「加入群聊」 → ``https://work.weixin.qq.com/gm/<config_id>``."""
    suffix = f"/wwpic/{name}"
    for prefix, ways in (("ca", state.contact_ways), ("gm", state.join_ways)):
        for way in ways.values():
            if way.qr_code and way.qr_code.endswith(suffix):
                return f"https://work.weixin.qq.com/{prefix}/{way.config_id}"
    return None


def qr_image(state: SimState, name: str) -> bytes | None:
    """The PNG served at ``/wwpic/<name>`` (segno, deterministic for a code), or None if no code has it."""
    payload = qr_payload(state, name)
    if payload is None:
        return None
    out = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(out, kind="png", scale=8, border=4)
    return out.getvalue()


def _check_contact_way_fields(state: SimState, b: dict[str, Any], type_: int) -> None:
    opt_str(b, "state", max_len=STATE_MAX)
    opt_str(b, "remark", max_len=STATE_MAX)
    users = str_list(b, "user")
    if any(u not in state.staff for u in users):
        raise ApiError(INVALID_USERID, "invalid userid")
    if type_ == 1 and len(users) != 1:
        raise ApiError(INVALID_PARAM, "type 1 needs exactly one user")
    if len(users) > 100:
        raise ApiError(41041, "contact way user count exceeds limit")
    if type_ == 2 and not users and not b.get("party"):
        raise ApiError(INVALID_PARAM, "user and party can not both be empty")
    if not 0 < opt_int(b, "expires_in", 7 * 86400) <= MAX_TEMP_SECONDS:
        raise ApiError(INVALID_PARAM, "invalid expires_in")


def add_contact_way(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/add_contact_way``: answers ``config_id`` (+ ``qr_code`` for scene 2)."""
    b = req.body
    if "type" not in b:
        raise ApiError(41037, "missing contact way type")
    if "scene" not in b:
        raise ApiError(41038, "missing contact way scene")
    if b["type"] not in (1, 2):
        raise ApiError(41039, "invalid contact way type")
    if b["scene"] not in (1, 2):
        raise ApiError(41040, "invalid contact way scene")
    _check_contact_way_fields(state, b, b["type"])
    way = ChannelCode(_new_config_id(state), dict(b), _qr(state, req.origin) if b["scene"] == 2 else None)
    state.contact_ways[way.config_id] = way
    return {"config_id": way.config_id, **({"qr_code": way.qr_code} if way.qr_code else {})}


def _contact_way(state: SimState, body: dict[str, Any]) -> ChannelCode:
    config_id = need_str(body, "config_id", 41043)
    way = state.contact_ways.get(config_id)
    if way is None:
        raise ApiError(41044, "invalid contact way config_id")
    return way


def get_contact_way(state: SimState, req: ApiRequest) -> dict[str, Any]:
    way = _contact_way(state, req.body)
    f = way.fields
    out: dict[str, Any] = {
        "config_id": way.config_id,
        "type": f["type"],
        "scene": f["scene"],
        "style": f.get("style", 0),
        "remark": f.get("remark", ""),
        "skip_verify": f.get("skip_verify", True),
        "state": f.get("state", ""),
        "user": f.get("user", []),
        "party": f.get("party", []),
        "is_temp": f.get("is_temp", False),
        "expires_in": f.get("expires_in", 7 * 86400),
        "chat_expires_in": f.get("chat_expires_in", 86400),
        "unionid": f.get("unionid", ""),
        "conclusions": f.get("conclusions", {}),
    }
    if way.qr_code:
        out["qr_code"] = way.qr_code
    return {"contact_way": out}


def update_contact_way(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """Only the editable fields change; ``type``/``scene`` are fixed at creation ([W:96348])."""
    way = _contact_way(state, req.body)
    merged = {**way.fields, **{k: v for k, v in req.body.items() if k in _CONTACT_WAY_EDITABLE}}
    _check_contact_way_fields(state, merged, merged["type"])
    way.fields = merged
    return {}


def del_contact_way(state: SimState, req: ApiRequest) -> dict[str, Any]:
    del state.contact_ways[_contact_way(state, req.body).config_id]
    return {}


def _join_way_fields(state: SimState, b: dict[str, Any]) -> dict[str, Any]:
    if b.get("scene") not in (1, 2):
        raise ApiError(INVALID_PARAM, "invalid scene")
    chats = str_list(b, "chat_id_list")
    if not 1 <= len(chats) <= 5:
        raise ApiError(INVALID_PARAM, "chat_id_list needs 1 to 5 chat ids")
    if any(c not in state.groups for c in chats):
        raise ApiError(CHAT_NOT_FOUND, "invalid chatid")
    opt_str(b, "state", max_len=STATE_MAX)
    opt_str(b, "room_base_name", max_len=40)
    return {
        "scene": b["scene"],
        "remark": (opt_str(b, "remark") or "")[:STATE_MAX],
        "auto_create_room": opt_int(b, "auto_create_room", 1),
        "room_base_name": b.get("room_base_name", ""),
        "room_base_id": opt_int(b, "room_base_id", 0),
        "chat_id_list": chats,
        "state": b.get("state", ""),
    }


def _join_way(state: SimState, body: dict[str, Any]) -> ChannelCode:
    way = state.join_ways.get(need_str(body, "config_id"))
    if way is None:
        raise ApiError(INVALID_PARAM, "invalid config_id")
    return way


def add_join_way(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``groupchat/add_join_way``: answers ``config_id``; the QR comes from ``get_join_way``
    (docs/platform.md#join-group-codes)."""
    way = ChannelCode(_new_config_id(state), _join_way_fields(state, req.body), _qr(state, req.origin))
    state.join_ways[way.config_id] = way
    return {"config_id": way.config_id}


def get_join_way(state: SimState, req: ApiRequest) -> dict[str, Any]:
    way = _join_way(state, req.body)
    return {"join_way": {"config_id": way.config_id, **way.fields, "qr_code": way.qr_code}}


def update_join_way(state: SimState, req: ApiRequest) -> dict[str, Any]:
    way = _join_way(state, req.body)
    way.fields = _join_way_fields(state, req.body)
    return {}


def member_json(state: SimState, m: GroupMember, need_name: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"userid": m.userid, "type": m.type, "join_time": m.join_time, "join_scene": m.join_scene}
    if m.invitor:
        out["invitor"] = {"userid": m.invitor}
    out["group_nickname"] = m.group_nickname
    if need_name:
        out["name"] = m.name or (state.staff[m.userid].name if m.userid in state.staff else m.userid)
    if m.type == 2 and m.unionid:
        out["unionid"] = m.unionid
    if m.state:
        out["state"] = m.state
    return out


def group_json(state: SimState, g: GroupChat, need_name: bool) -> dict[str, Any]:
    return {
        "chat_id": g.chat_id,
        "name": g.name,
        "owner": g.owner,
        "create_time": g.create_time,
        "notice": g.notice,
        "member_list": [member_json(state, m, need_name) for m in g.members.values()],
        "admin_list": [{"userid": u} for u in g.admins],
        "member_version": g.member_version,
    }


def groupchat_get(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/groupchat/get`` ``{chat_id, need_name}`` → ``group_chat`` (docs/platform.md#group-detail)."""
    group = state.groups.get(need_str(req.body, "chat_id", CHAT_NOT_FOUND))
    if group is None:
        raise ApiError(CHAT_NOT_FOUND, "invalid chatid")
    if group.dismissed:
        raise ApiError(49008, "chat has been dismissed")
    return {"group_chat": group_json(state, group, req.body.get("need_name") == 1)}


ROUTES = {
    "externalcontact/add_contact_way": Route(add_contact_way),
    "externalcontact/get_contact_way": Route(get_contact_way),
    "externalcontact/update_contact_way": Route(update_contact_way),
    "externalcontact/del_contact_way": Route(del_contact_way),
    "externalcontact/groupchat/add_join_way": Route(add_join_way),
    "externalcontact/groupchat/get_join_way": Route(get_join_way),
    "externalcontact/groupchat/update_join_way": Route(update_join_way),
    "externalcontact/groupchat/get": Route(groupchat_get),
}
