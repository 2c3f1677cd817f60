"""Group robot webhooks (docs/platform.md#group-robots): ``POST /cgi-bin/webhook/send?key=KEY``, no access token.

* Unknown key → 93000 "invalid webhook url".
* 20 messages a minute per robot (key); the 21st within 60 s → 45009 "api freq out of limit".
* ``text`` content ≤ 2048 bytes, ``markdown`` ≤ 4096 bytes (40058 otherwise).

A delivered post is recorded in ``state.delivered`` as ``Delivered("webhook/send", chat_id, …)``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.simulator.api import API_LIMIT, INVALID_PARAM, ApiError, ApiRequest, Route, need_dict, need_str
from bot.simulator.models import Delivered

if TYPE_CHECKING:
    from bot.simulator.state import SimState

INVALID_WEBHOOK_KEY = 93000
PER_MINUTE = 20
_MAX_BYTES = {"text": 2048, "markdown": 4096}


def webhook_send(state: SimState, req: ApiRequest) -> dict[str, Any]:
    key = req.query.get("key", "")
    chat_id = state.robots.get(key)
    if chat_id is None:
        raise ApiError(INVALID_WEBHOOK_KEY, "invalid webhook url")
    now = state.now()
    sends = [t for t in state.robot_sends.get(key, []) if now - t < timedelta(minutes=1)]
    if len(sends) >= PER_MINUTE:
        state.robot_sends[key] = sends
        raise ApiError(API_LIMIT, "api freq out of limit")
    msgtype = need_str(req.body, "msgtype", 40008)
    if msgtype in _MAX_BYTES:
        content = need_dict(req.body, msgtype).get("content")
        if not isinstance(content, str) or not content or len(content.encode()) > _MAX_BYTES[msgtype]:
            raise ApiError(INVALID_PARAM, f"invalid {msgtype} content")
    state.robot_sends[key] = [*sends, now]
    state.delivered.append(Delivered("webhook/send", chat_id, now, dict(req.body)))
    return {}


ROUTES = {"webhook/send": Route(webhook_send, auth=False)}
