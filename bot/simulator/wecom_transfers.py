"""Staff changes: 离职继承 and 在职继承 of customers and customer groups (docs/platform.md#staff-transfers).

* ``externalcontact/get_unassigned_list`` ``{cursor, page_size ≤ 1000 (default 1000)}``: the customers of
  departed members not handed over yet (``info[]`` of ``handover_userid``, ``external_userid``,
  ``dimission_time``; ``is_last``, ``next_cursor``). A customer whose handover is under way is not listed
  (our choice: the page does not say).
* ``externalcontact/resigned/transfer_customer`` and ``externalcontact/transfer_customer`` (the latter with
  ``transfer_success_msg`` ≤ 200 characters): ≤ 100 ``external_userid`` a call, one ``customer[]`` entry
  each with its own ``errcode`` — 0 starts the handover, which completes 24 h later unless the customer
  refuses. The whole call answers 40097 when the handover member has not left (resigned) and 40003 for an
  unknown member; per customer 40096 (not this member's customer), 40100 (already being handed over),
  40128 (在职: the customer was handed over twice in 90 days).
* ``externalcontact/resigned/transfer_result`` / ``externalcontact/transfer_result``
  ``{handover_userid, takeover_userid, cursor}``: ``customer[]`` of ``external_userid``, ``status``
  (1 接替完毕, 2 等待接替, 3 客户拒绝, 4 接替成员客户达到上限) and ``takeover_time`` (the future automatic
  takeover while waiting, 0 when refused), ≤ 1000 per page, ``next_cursor``.
* ``externalcontact/groupchat/transfer`` (groups of departed owners) and ``groupchat/onjob_transfer``
  ``{chat_id_list 1..100, new_owner}``: ``failed_chat_list[]`` with ``chat_id``, ``errcode``, ``errmsg``
  (90500 the owner is not resigned; 40050 unknown chat); the others change owner at once.

Time is the simulator's clock: a waiting handover is decided (:func:`settle`) whenever the platform is
next asked anything after its ``takeover_time``. A refusal (:meth:`bot.simulator.Simulator.refuse_transfer`)
or a successor at their customer cap produces ``change_external_contact``/``transfer_fail`` with
``UserID`` = the taking-over member and ``FailReason`` ``customer_refused`` / ``customer_limit_exceed``;
callbacks the platform produces on its own are kept in ``state.outgoing`` until
:meth:`bot.simulator.Simulator.push_outgoing` delivers them. A completed handover moves the relationship
to the successor without a callback (our choice: the pages do not promise one).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.simulator import xml_events
from bot.simulator.api import (
    CHAT_NOT_FOUND,
    INVALID_EXTERNAL_USERID,
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
from bot.simulator.models import DONE, LIMIT, REFUSED, WAITING, FollowUser, Handover
from bot.simulator.wecom_lists import page

if TYPE_CHECKING:
    from bot.simulator.state import SimState

TAKEOVER_DELAY = timedelta(hours=24)
MAX_CUSTOMERS_PER_CALL = 100
MAX_CHATS_PER_CALL = 100
MAX_PAGE = 1000
SUCCESS_MSG_MAX = 200
NOT_RESIGNED = 40097  # 该成员尚未离职
IN_TRANSFER = 40100  # 此用户的外部联系人已经在转移流程中
TOO_FREQUENT = 40128  # 在职继承: at most twice in 90 days per customer
CHAT_OWNER_NOT_RESIGNED = 90500
ONJOB_WINDOW, ONJOB_MAX = timedelta(days=90), 2


def transfers(state: SimState) -> list[Handover]:
    return state.handovers


def depart(state: SimState, userid: str) -> None:
    """The member leaves the corp (离职): no longer a follow user; their customers become unassigned."""
    member = state.staff.get(userid)
    if member is None:
        raise KeyError(userid)
    if member.dimission_time is None:
        member.dimission_time = state.ts()


def settle(state: SimState) -> None:
    """Decide every waiting handover whose takeover time has come (the platform's 24-hour rule)."""
    now = state.ts()
    for h in transfers(state):
        if h.status != WAITING or h.takeover_time > now:
            continue
        member = state.staff.get(h.takeover)
        cap = member.customer_limit if member is not None else None
        if cap is not None and _customers_of(state, h.takeover) >= cap:
            h.status = LIMIT
            if h.kind == "resigned":
                _end(state, h.external_userid, h.handover)
            state.outgoing.append(_fail_event(state, h, "customer_limit_exceed"))
            continue
        h.status = DONE
        _move(state, h)


def refuse(state: SimState, external_userid: str) -> Handover:
    """The customer refuses their waiting handover: status 3; the callback's plaintext is returned by
    :func:`fail_event`. 在职: the customer stays with the member; 离职: the relationship is gone."""
    waiting = [h for h in transfers(state) if h.external_userid == external_userid and h.status == WAITING]
    if not waiting:
        raise LookupError(f"no waiting handover for {external_userid}")
    h = waiting[-1]
    h.status, h.takeover_time = REFUSED, 0
    if h.kind == "resigned":
        _end(state, external_userid, h.handover)
    return h


def fail_event(state: SimState, h: Handover, reason: str) -> str:
    return _fail_event(state, h, reason)


def _fail_event(state: SimState, h: Handover, reason: str) -> str:
    return xml_events.contact_event(
        state.accounts.corp_id, state.ts(), "transfer_fail", h.takeover, h.external_userid, fail_reason=reason
    )


def _customers_of(state: SimState, userid: str) -> int:
    return sum(1 for c in state.contacts.values() if (f := c.follow.get(userid)) is not None and f.active)


def _end(state: SimState, external_userid: str, userid: str) -> None:
    follow = state.contacts[external_userid].follow.get(userid)
    if follow is not None:
        follow.active = False


def _move(state: SimState, h: Handover) -> None:
    contact = state.contacts[h.external_userid]
    old = contact.follow.get(h.handover)
    if old is not None:
        old.active = False
    contact.follow[h.takeover] = FollowUser(
        userid=h.takeover, createtime=h.takeover_time, state=old.state if old else None, oper_userid=h.takeover
    )


def _waiting_for(state: SimState, external_userid: str) -> bool:
    return any(h.external_userid == external_userid and h.status == WAITING for h in transfers(state))


def _customers_list(body: dict[str, Any]) -> list[str]:
    ids = str_list(body, "external_userid")
    if not ids:
        raise ApiError(41035, "missing external userid")
    if len(ids) > MAX_CUSTOMERS_PER_CALL:
        raise ApiError(INVALID_PARAM, f"external_userid holds more than {MAX_CUSTOMERS_PER_CALL} items")
    return ids


def _member(state: SimState, body: dict[str, Any], key: str) -> str:
    userid = need_str(body, key, INVALID_USERID)
    if userid not in state.staff:
        raise ApiError(INVALID_USERID, f"invalid {key}")
    return userid


def _start(state: SimState, kind: str, body: dict[str, Any], msg: str | None) -> dict[str, Any]:
    handover, takeover = _member(state, body, "handover_userid"), _member(state, body, "takeover_userid")
    if state.staff[takeover].dimission_time is not None:
        raise ApiError(INVALID_USERID, "invalid takeover_userid")
    if kind == "resigned" and state.staff[handover].dimission_time is None:
        raise ApiError(NOT_RESIGNED, "user not resigned from corp")
    now = state.ts()
    answers = []
    for ext in _customers_list(body):
        code = _refusal(state, kind, handover, ext, now)
        if code == 0:
            start = Handover(
                kind, handover, takeover, ext, now, now + int(TAKEOVER_DELAY.total_seconds()), success_msg=msg
            )
            transfers(state).append(start)
        answers.append({"external_userid": ext, "errcode": code})
    return {"customer": answers}


def _refusal(state: SimState, kind: str, handover: str, ext: str, now: int) -> int:
    contact = state.contacts.get(ext)
    follow = contact.follow.get(handover) if contact is not None else None
    if follow is None or not follow.active:
        return INVALID_EXTERNAL_USERID
    if _waiting_for(state, ext):
        return IN_TRANSFER
    if kind == "onjob":
        since = now - int(ONJOB_WINDOW.total_seconds())
        recent = [h for h in transfers(state) if h.kind == "onjob" and h.external_userid == ext and h.started >= since]
        if len(recent) >= ONJOB_MAX:
            return TOO_FREQUENT
    return 0


def resigned_transfer_customer(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/resigned/transfer_customer`` ([W:94081], 分配离职成员的客户)."""
    return _start(state, "resigned", req.body, None)


def onjob_transfer_customer(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/transfer_customer`` ([W:92125], 分配在职成员的客户)."""
    msg = opt_str(req.body, "transfer_success_msg", max_len=SUCCESS_MSG_MAX)
    return _start(state, "onjob", req.body, msg)


def _result(state: SimState, kind: str, req: ApiRequest) -> dict[str, Any]:
    handover = need_str(req.body, "handover_userid", INVALID_USERID)
    takeover = need_str(req.body, "takeover_userid", INVALID_USERID)
    api = f"{kind}/transfer_result:{handover}:{takeover}"

    def snapshot() -> list[Handover]:
        return [h for h in transfers(state) if h.kind == kind and h.handover == handover and h.takeover == takeover]

    rows, next_cursor = page(state, api, req.body.get("cursor"), MAX_PAGE, snapshot)
    customers = [
        {"external_userid": h.external_userid, "status": h.status, "takeover_time": h.takeover_time} for h in rows
    ]
    return {"customer": customers, "next_cursor": next_cursor}


def resigned_transfer_result(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/resigned/transfer_result`` ([W:94082], 查询客户接替状态 离职)."""
    return _result(state, "resigned", req)


def onjob_transfer_result(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/transfer_result`` ([W:94088], 查询客户接替状态 在职)."""
    return _result(state, "onjob", req)


def get_unassigned_list(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/get_unassigned_list`` ([W:92124]): page_size 1..1000, default 1000."""
    size = opt_int(req.body, "page_size", MAX_PAGE)
    if not 1 <= size <= MAX_PAGE:
        raise ApiError(INVALID_PARAM, f"page_size must be 1..{MAX_PAGE}")

    def snapshot() -> list[dict[str, Any]]:
        found = []
        for userid, member in state.staff.items():
            if member.dimission_time is None:
                continue
            for contact in state.contacts.values():
                f = contact.follow.get(userid)
                if f is not None and f.active and not _waiting_for(state, contact.external_userid):
                    found.append({"handover_userid": userid, "external_userid": contact.external_userid,
                                  "dimission_time": member.dimission_time})  # fmt: skip
        return found

    info, next_cursor = page(state, "get_unassigned_list", req.body.get("cursor"), size, snapshot)
    return {"info": info, "is_last": next_cursor == "", "next_cursor": next_cursor}


def _groups(state: SimState, req: ApiRequest, resigned: bool) -> dict[str, Any]:
    chats = str_list(req.body, "chat_id_list")
    if not 1 <= len(chats) <= MAX_CHATS_PER_CALL:
        raise ApiError(INVALID_PARAM, f"chat_id_list must hold 1..{MAX_CHATS_PER_CALL} chat ids")
    owner = _member(state, req.body, "new_owner")
    failed = []
    for chat_id in chats:
        group = state.groups.get(chat_id)
        if group is None or group.dismissed:
            failed.append({"chat_id": chat_id, "errcode": CHAT_NOT_FOUND, "errmsg": "chatid not found"})
            continue
        departed = state.staff[group.owner].dimission_time is not None if group.owner in state.staff else True
        if resigned and not departed:
            failed.append({"chat_id": chat_id, "errcode": CHAT_OWNER_NOT_RESIGNED,
                           "errmsg": "the owner of this chat is not resigned"})  # fmt: skip
            continue
        group.owner = owner
    return {"failed_chat_list": failed}


def groupchat_transfer(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/groupchat/transfer`` ([W:92127], 分配离职成员的客户群)."""
    return _groups(state, req, resigned=True)


def groupchat_onjob_transfer(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``POST externalcontact/groupchat/onjob_transfer`` ([W:95703], 分配在职成员的客户群)."""
    return _groups(state, req, resigned=False)


def user_get(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``GET user/get?userid=`` ([W:90196], 读取成员): ``department`` ids; a departed member is gone
    from the directory (60111 userid not found)."""
    userid = req.query.get("userid", "")
    member = state.staff.get(userid)
    if member is None or member.dimission_time is not None:
        raise ApiError(60111, "userid not found")
    return {"userid": userid, "name": member.name, "department": list(member.department),
            "main_department": member.department[0] if member.department else 0, "status": 1}  # fmt: skip


ROUTES = {
    "externalcontact/get_unassigned_list": Route(get_unassigned_list),
    "externalcontact/resigned/transfer_customer": Route(resigned_transfer_customer),
    "externalcontact/resigned/transfer_result": Route(resigned_transfer_result),
    "externalcontact/transfer_customer": Route(onjob_transfer_customer),
    "externalcontact/transfer_result": Route(onjob_transfer_result),
    "externalcontact/groupchat/transfer": Route(groupchat_transfer),
    "externalcontact/groupchat/onjob_transfer": Route(groupchat_onjob_transfer),
    "user/get": Route(user_get, frozenset({"GET"})),
}
