"""Official Account APIs under ``/mp/cgi-bin/`` (docs/platform.md#official-account; token endpoints in ``tokens.py``).

* ``message/custom/send``
  (docs/platform.md#customer-service-messages): the user writing opens 5 messages / 48 h; follow, scan and menu
  CLICK open 3 messages / 1 minute. Outside every window, or for an unfollowed user → **45015**
  "response out of time limit or subscription is canceled"; inside a window whose quota is used up →
  **45047** "out of response count limit". ``news`` with more than 1 article → 45008 (docs/platform.md#passive-replies).
* ``tags/*`` (user-tag management page): name ≤ 30 (45158), unique (45157), ≤ 100 tags (45056);
  batchtagging ≤ 50 openids (40032), unknown tag 45159, ≤ 20 tags per user (45059).
* ``qrcode/create``
  (docs/platform.md#parametric-qr-codes): ``scene_str`` 1–64 chars, permanent ``scene_id`` 1–100000, temp
  ``expire_seconds`` default 30 and capped at 2592000; a body without the ``scene`` level yields scene
  0, as on the real platform. Invalid arguments → 40097 "invalid args".
* ``user/info`` (docs/platform.md#follow-and-scan-events): unfollowed users answer ``{"subscribe": 0, "openid": ...}``.
* ``template/send``
  (docs/platform.md#template-messages): 43004 not following, 40037 unknown template, ``client_msg_id`` delivers
  once per openid within 10 minutes (the repeat answers the first msgid).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.simulator.api import GET, ApiError, ApiRequest, Route, need_dict, need_str
from bot.simulator.models import Delivered, OaFollower, OaTag, QrCode

if TYPE_CHECKING:
    from bot.simulator.state import SimState

_CUSTOM_TYPES = {
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
}
_QR_ACTIONS = {"QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"}
QR_TEMP_DEFAULT, QR_TEMP_MAX, QR_PERMANENT_MAX = 30, 2_592_000, 100_000


def _follower(state: SimState, openid: str) -> OaFollower:
    follower = state.followers.get(openid)
    if follower is None:
        raise ApiError(40003, "invalid openid")
    return follower


def _consume_window(state: SimState, follower: OaFollower) -> None:
    now = state.now()
    windows = [follower.event_window, follower.message_window]  # the 1-minute window expires first
    open_ = [w for w in windows if w is not None and now - w.opened_at < timedelta(seconds=w.seconds)]
    if not follower.subscribed or not open_:
        raise ApiError(45015, "response out of time limit or subscription is canceled")
    usable = [w for w in open_ if w.used < w.limit]
    if not usable:
        raise ApiError(45047, "out of response count limit")
    usable[0].used += 1


def custom_send(state: SimState, req: ApiRequest) -> dict[str, Any]:
    b = req.body
    follower = _follower(state, need_str(b, "touser", 40003))
    msgtype = need_str(b, "msgtype", 40008)
    if msgtype not in _CUSTOM_TYPES:
        raise ApiError(40008, "invalid message type")
    if msgtype == "news" and len(need_dict(b, "news").get("articles") or []) > 1:
        raise ApiError(45008, "article size out of limit")
    _consume_window(state, follower)
    state.delivered.append(Delivered("message/custom/send", follower.openid, state.now(), dict(b)))
    return {}


def tags_create(state: SimState, req: ApiRequest) -> dict[str, Any]:
    name = need_str(need_dict(req.body, "tag"), "name", 45158)
    if len(name.encode()) > 30:
        raise ApiError(45158, "tag name too long")
    if any(t.name == name for t in state.oa_tags.values()):
        raise ApiError(45157, "invalid tag name")
    if len(state.oa_tags) >= 100:
        raise ApiError(45056, "too many tags now, no need to add new")
    tag = OaTag(id=max(state.oa_tags, default=99) + 1, name=name)  # ids 0-99 are reserved
    state.oa_tags[tag.id] = tag
    return {"tag": {"id": tag.id, "name": tag.name}}


def tags_get(state: SimState, req: ApiRequest) -> dict[str, Any]:
    def count(tag_id: int) -> int:
        return sum(1 for f in state.followers.values() if f.subscribed and tag_id in f.tag_ids)

    return {"tags": [{"id": t.id, "name": t.name, "count": count(t.id)} for t in state.oa_tags.values()]}


def batchtagging(state: SimState, req: ApiRequest) -> dict[str, Any]:
    b = req.body
    openids = b.get("openid_list")
    if not isinstance(openids, list) or not 1 <= len(openids) <= 50:
        raise ApiError(40032, "invalid openid list size")
    tag_id = b.get("tagid")
    if not isinstance(tag_id, int) or tag_id not in state.oa_tags:
        raise ApiError(45159, "invalid tag id")
    followers = [_follower(state, o if isinstance(o, str) else "") for o in openids]
    if any(len(f.tag_ids) >= 20 and tag_id not in f.tag_ids for f in followers):
        raise ApiError(45059, "user tag count exceeds 20")
    for f in followers:
        if tag_id not in f.tag_ids:
            f.tag_ids.append(tag_id)
    return {}


def _qr_scene(action: str, info: dict[str, Any]) -> tuple[int | None, str | None]:
    scene = info.get("scene")
    if not isinstance(scene, dict):
        # docs/platform.md#parametric-qr-codes
        return 0, None  # the common bug of omitting the ``scene`` level → scene 0
    if "STR" in action:
        value = scene.get("scene_str")
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise ApiError(40097, "invalid args")
        return None, value
    scene_id = scene.get("scene_id")
    low, high = (1, QR_PERMANENT_MAX) if action == "QR_LIMIT_SCENE" else (1, 2**32 - 1)
    if not isinstance(scene_id, int) or isinstance(scene_id, bool) or not low <= scene_id <= high:
        raise ApiError(40097, "invalid args")
    return scene_id, None


def qrcode_create(state: SimState, req: ApiRequest) -> dict[str, Any]:
    b = req.body
    action = b.get("action_name")
    if action not in _QR_ACTIONS or not isinstance(action, str):
        raise ApiError(40097, "invalid args")
    scene_id, scene_str = _qr_scene(action, b.get("action_info") or {})
    permanent = action.startswith("QR_LIMIT")
    if permanent and sum(1 for q in state.qrcodes.values() if q.expire_at is None) >= QR_PERMANENT_MAX:
        raise ApiError(45009, "reach max api daily quota limit")
    ticket = "gQ" + state.new_id("", 94)
    out: dict[str, Any] = {"ticket": ticket, "url": f"http://weixin.qq.com/q/{state.new_id('', 22)}"}
    expire_at = None
    if not permanent:
        raw = b.get("expire_seconds", QR_TEMP_DEFAULT)
        seconds = min(raw, QR_TEMP_MAX) if isinstance(raw, int) and raw > 0 else QR_TEMP_DEFAULT
        expire_at = state.now() + timedelta(seconds=seconds)
        out = {"ticket": ticket, "expire_seconds": seconds, "url": out["url"]}
    state.qrcodes[ticket] = QrCode(ticket, action, scene_id, scene_str, expire_at)
    return out


def user_info(state: SimState, req: ApiRequest) -> dict[str, Any]:
    return _user_info(_follower(state, req.query.get("openid", "")))


USER_GET_PAGE = 10_000
BATCHGET_MAX = 100


def user_get(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``GET user/get?next_openid=`` (docs/platform.md#customer-lists): 10,000 followers per page in
    order; ``next_openid`` is the last openid of the page and starts the next one after it (an openid
    that is not a follower answers 40003); the call after the last page answers ``count`` 0."""
    openids = [f.openid for f in state.followers.values() if f.subscribed]
    after = req.query.get("next_openid", "")
    start = 0
    if after:
        if after not in state.followers:
            raise ApiError(40003, "invalid openid")
        start = next((i + 1 for i, o in enumerate(openids) if o == after), len(openids))
    chunk = openids[start : start + USER_GET_PAGE]
    if not chunk:
        return {"total": len(openids), "count": 0, "next_openid": ""}
    return {"total": len(openids), "count": len(chunk), "data": {"openid": chunk}, "next_openid": chunk[-1]}


def user_info_batchget(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST user/info/batchget`` ``{user_list: [{openid, lang}]}``, 1..100 entries (else 40032, "invalid
    openid list size"); each answer as ``user/info``'s."""
    entries = req.body.get("user_list")
    if not isinstance(entries, list) or not 1 <= len(entries) <= BATCHGET_MAX:
        raise ApiError(40032, "invalid openid list size")
    openids = [e.get("openid") if isinstance(e, dict) else None for e in entries]
    return {"user_info_list": [_user_info(_follower(state, o if isinstance(o, str) else "")) for o in openids]}


def _user_info(follower: OaFollower) -> dict[str, Any]:
    union = {"unionid": follower.unionid} if follower.unionid else {}
    if not follower.subscribed:
        return {"subscribe": 0, "openid": follower.openid, **union}
    return {
        "subscribe": 1,
        "openid": follower.openid,
        "language": "zh_CN",
        "subscribe_time": follower.subscribe_time,
        **union,
        "remark": follower.remark,
        "groupid": 0,
        "tagid_list": list(follower.tag_ids),
        "subscribe_scene": follower.subscribe_scene,
        "qr_scene": follower.qr_scene,
        "qr_scene_str": follower.qr_scene_str,
    }


def template_send(state: SimState, req: ApiRequest) -> dict[str, Any]:
    b = req.body
    follower = _follower(state, need_str(b, "touser", 40003))
    if need_str(b, "template_id", 40037) not in state.mp_templates:
        raise ApiError(40037, "invalid template_id")
    if not follower.subscribed:
        raise ApiError(43004, "require subscribe")
    client_msg_id = b.get("client_msg_id")
    key = (follower.openid, client_msg_id) if isinstance(client_msg_id, str) and client_msg_id else None
    if key is not None and key in state.template_dedup:
        first_id, at = state.template_dedup[key]
        if state.now() - at < timedelta(minutes=10):
            return {"msgid": int(first_id)}
    msgid = state.rng.randrange(10**18, 10**19)
    state.delivered.append(Delivered("message/template/send", follower.openid, state.now(), dict(b), str(msgid)))
    if key is not None:
        state.template_dedup[key] = (str(msgid), state.now())
    return {"msgid": msgid}


ROUTES = {
    "message/custom/send": Route(custom_send),
    "tags/create": Route(tags_create, envelope=False),
    "tags/get": Route(tags_get, GET, envelope=False),
    "tags/members/batchtagging": Route(batchtagging),
    "qrcode/create": Route(qrcode_create, envelope=False),
    "user/info": Route(user_info, GET, envelope=False),
    "user/get": Route(user_get, GET, envelope=False),
    "user/info/batchget": Route(user_info_batchget, envelope=False),
    "message/template/send": Route(template_send),
}
