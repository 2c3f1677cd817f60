"""WeCom customer lists, for importing an existing account (docs/platform.md#customer-lists):
``get_follow_user_list``, ``batch/get_by_user``, ``groupchat/list``.

A cursor is opaque and names a position in a list taken when the traversal started (a snapshot: what
changes meanwhile shows up in the next traversal, or through callbacks). A cursor the platform did not
hand out answers 40058 (不合法的参数; the errcode for an unknown cursor is not documented — unconfirmed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.simulator.api import GET, INVALID_PARAM, INVALID_USERID, ApiError, ApiRequest, Route, opt_int, str_list
from bot.simulator.wecom_contacts import contact_json

if TYPE_CHECKING:
    from bot.simulator.state import SimState

BY_USER_MAX_USERS = 100
BY_USER_MAX_LIMIT = 100
BY_USER_DEFAULT_LIMIT = 50
GROUPCHAT_MAX_LIMIT = 1000
GROUPCHAT_OWNERS_MAX = 100


def page(
    state: SimState, api: str, cursor: object, limit: int, snapshot: Callable[[], list[Any]]
) -> tuple[list[Any], str]:
    """One page of a cursor traversal: ``(items, next_cursor)``, ``""`` after the last page."""
    if cursor in (None, ""):
        items, start = snapshot(), 0
    else:
        held = state.list_cursors.get(cursor) if isinstance(cursor, str) else None
        if held is None or held[0] != api:
            raise ApiError(INVALID_PARAM, "invalid cursor")
        _, items, start = held
    end = start + limit
    if end >= len(items):
        return items[start:], ""
    token = state.new_id("", 32)
    state.list_cursors[token] = (api, items, end)
    return items[start:end], token


def get_follow_user_list(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``GET externalcontact/get_follow_user_list`` ([W:92571]): the members with the customer-contact
    feature (in the simulator: every member still employed; a departed member is no longer listed)."""
    return {"follow_user": [u for u, s in state.staff.items() if s.dimission_time is None]}


def _follow_info(state: SimState, ext: str, userid: str) -> dict[str, Any]:
    contact = state.contacts[ext]
    f = contact.follow[userid]
    follow: dict[str, Any] = {
        "userid": f.userid,
        "remark": f.remark,
        "description": f.description,
        "createtime": f.createtime,
        "tag_id": list(f.tag_ids),
        "remark_mobiles": [],
        "oper_userid": f.oper_userid,
        "add_way": f.add_way,
    }
    if f.state is not None:
        follow["state"] = f.state
    return {"external_contact": contact_json(contact), "follow_info": follow}


def batch_get_by_user(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/batch/get_by_user`` ``{userid_list ≤ 100, cursor, limit ≤ 100 (default 50)}``
    ([W:92994]): one row per (customer, member) relationship, ``follow_info.tag_id`` holds tag ids only.
    An unknown member answers 40003; a limit outside 1..100 or a bad cursor 40058."""
    users = str_list(req.body, "userid_list")
    if not 1 <= len(users) <= BY_USER_MAX_USERS:
        raise ApiError(INVALID_PARAM, f"userid_list must hold 1..{BY_USER_MAX_USERS} userids")
    if any(u not in state.staff for u in users):
        raise ApiError(INVALID_USERID, "invalid userid")
    limit = opt_int(req.body, "limit", BY_USER_DEFAULT_LIMIT)
    if not 1 <= limit <= BY_USER_MAX_LIMIT:
        raise ApiError(INVALID_PARAM, f"limit must be 1..{BY_USER_MAX_LIMIT}")
    wanted = set(users)

    def snapshot() -> list[tuple[str, str]]:
        return [
            (c.external_userid, f.userid)
            for c in state.contacts.values()
            for f in c.follow.values()
            if f.active and f.userid in wanted
        ]

    rows, next_cursor = page(state, "batch/get_by_user", req.body.get("cursor"), limit, snapshot)
    return {"external_contact_list": [_follow_info(state, e, u) for e, u in rows], "next_cursor": next_cursor}


def groupchat_list(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/groupchat/list`` ``{status_filter, owner_filter: {userid_list}, cursor, limit}``
    ([W:92120]): ``limit`` is required, 1..1000; ``status_filter`` 0 all, 1-3 the groups of departed
    members being handed over (none in the simulator); dismissed groups are not listed."""
    limit = opt_int(req.body, "limit", 0)
    if not 1 <= limit <= GROUPCHAT_MAX_LIMIT:
        raise ApiError(INVALID_PARAM, f"limit must be 1..{GROUPCHAT_MAX_LIMIT}")
    status_filter = opt_int(req.body, "status_filter", 0)
    if status_filter not in (0, 1, 2, 3):
        raise ApiError(INVALID_PARAM, "status_filter must be 0..3")
    owner_filter = req.body.get("owner_filter") or {}
    if not isinstance(owner_filter, dict):
        raise ApiError(INVALID_PARAM, "owner_filter must be an object")
    owners = set(str_list(owner_filter, "userid_list", max_items=GROUPCHAT_OWNERS_MAX))

    def snapshot() -> list[str]:
        if status_filter:
            return []
        return [g.chat_id for g in state.groups.values() if not g.dismissed and (not owners or g.owner in owners)]

    chats, next_cursor = page(state, "groupchat/list", req.body.get("cursor"), limit, snapshot)
    return {"group_chat_list": [{"chat_id": c, "status": 0} for c in chats], "next_cursor": next_cursor}


ROUTES = {
    "externalcontact/get_follow_user_list": Route(get_follow_user_list, GET),
    "externalcontact/batch/get_by_user": Route(batch_get_by_user),
    "externalcontact/groupchat/list": Route(groupchat_list),
}
