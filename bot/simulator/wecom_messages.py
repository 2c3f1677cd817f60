"""WeCom sending APIs: group-send tasks (docs/platform.md#group-send-tasks), 微信客服 kf
(docs/platform.md#wecom-kf) and app messages (docs/platform.md#app-messages).

* ``add_msg_template`` ([W:92135]) only creates a task; nothing reaches a customer until the member
  confirms (:func:`confirm_msg_template`, or ``state.auto_confirm_group_msgs``). Targets that are not
  the sender's customers go to ``fail_list``; the monthly receive cap ("days in the month" per
  customer / per group,
  docs/platform.md#group-send-tasks) is applied when the member confirms and shows as send-result status 3.
  No valid target → 41048 "无可发送的客户"; unknown msgid → 41047, missing → 41046.
* ``remind_groupmsg_send``: ≤ 3 reminders per message per 24 h; the 4th → 45009 (no specific
  errcode is published).
* ``kf/send_msg``: only within 48 h after the customer's last message, ≤ 5 messages, reset when the
  customer writes again. No errcode is published for this rule; we answer 95018 "send msg session
  status invalid", the code integrators report when kf/send_msg is refused outside a sendable session
  (whyiyhw/chatgpt-wechat#128, langbot-app/LangBot#2061). ``kf/sync_msg``: the callback ``token`` is
  valid 10 minutes (else 95007), messages older than 3 days are not returned.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.simulator.api import API_LIMIT, INVALID_PARAM, ApiError, ApiRequest, Route, need_str, opt_int, str_list
from bot.simulator.models import Delivered, KfMessage, MsgTemplate, SendResult
from bot.simulator.wecom_contacts import check_attachments, check_text

if TYPE_CHECKING:
    from bot.simulator.state import SimState

KF_WINDOW = timedelta(hours=48)
KF_WINDOW_MESSAGES = 5
KF_TOKEN_TTL = timedelta(minutes=10)
KF_HISTORY = timedelta(days=3)


def _single_targets(state: SimState, b: dict[str, Any], sender: str | None) -> tuple[list[SendResult], list[str]]:
    wanted = str_list(b, "external_userid")
    if not wanted:
        wanted = [e for e, c in state.contacts.items() if any(f.active for f in c.follow.values())]
    results, fails = [], []
    for ext in wanted:
        contact = state.contacts.get(ext)
        follows = [f for f in contact.follow.values() if f.active] if contact else []
        if sender:
            follows = [f for f in follows if f.userid == sender]
        if not follows:
            fails.append(ext)
            continue
        latest = max(follows, key=lambda f: f.createtime)  # pushed to the member who last interacted
        results.append(SendResult(userid=latest.userid, external_userid=ext))
    return results, fails


def _group_targets(state: SimState, b: dict[str, Any], sender: str) -> list[SendResult]:
    chat_ids = str_list(b, "chat_id_list", max_items=2000)
    owned = [g for g in state.groups.values() if g.owner == sender and not g.dismissed]
    if chat_ids:
        if any(c not in state.groups for c in chat_ids):
            raise ApiError(40050, "invalid chatid")
        owned = [g for g in owned if g.chat_id in chat_ids]
    return [SendResult(userid=sender, chat_id=g.chat_id) for g in owned]


def add_msg_template(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/add_msg_template`` → ``msgid`` + ``fail_list`` (docs/platform.md#group-send-tasks)."""
    b = req.body
    chat_type = b.get("chat_type", "single")
    if chat_type not in ("single", "group"):
        raise ApiError(INVALID_PARAM, "invalid chat_type")
    if not check_text(b) and not check_attachments(b):
        raise ApiError(INVALID_PARAM, "text and attachments can not both be empty")
    sender = b.get("sender") if isinstance(b.get("sender"), str) and b.get("sender") else None
    if chat_type == "group":
        if sender is None:
            raise ApiError(INVALID_PARAM, "sender is required for chat_type group")
        results, fails = _group_targets(state, b, sender), list[str]()
    else:
        results, fails = _single_targets(state, b, sender)
    if not results:
        raise ApiError(41048, "no customer to send")
    task = MsgTemplate(state.new_id("msg", 27), chat_type, state.ts(), dict(b), results)
    state.msg_templates[task.msgid] = task
    if state.auto_confirm_group_msgs:
        confirm_msg_template(state, task.msgid)
    return {"fail_list": fails, "msgid": task.msgid}


def confirm_msg_template(state: SimState, msgid: str, userid: str | None = None) -> MsgTemplate:
    """The member taps "send" in the client: deliver to each target unless it is no longer a friend
    (status 2) or already received this month's cap of mass messages (status 3)."""
    task = state.msg_templates[msgid]
    month, cap = state.month_cap()
    for result in task.results:
        if result.status != 0 or (userid is not None and result.userid != userid):
            continue
        target = result.external_userid or result.chat_id or ""
        if result.external_userid:
            follow = state.contacts[result.external_userid].follow.get(result.userid)
            if follow is None or not follow.active:
                result.status = 2
                continue
        received = state.mass_received.get((target, month), 0)
        if received >= cap:
            result.status = 3
            continue
        state.mass_received[(target, month)] = received + 1
        result.status, result.send_time = 1, state.ts()
        state.delivered.append(Delivered("externalcontact/add_msg_template", target, state.now(), task.body, msgid))
    return task


def _task(state: SimState, body: dict[str, Any]) -> MsgTemplate:
    task = state.msg_templates.get(need_str(body, "msgid", 41046))
    if task is None:
        raise ApiError(41047, "invalid msgid")
    return task


def _page(body: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    limit = opt_int(body, "limit", 500)
    if not 1 <= limit <= 1000:
        raise ApiError(INVALID_PARAM, "limit must be 1..1000")
    cursor = body.get("cursor") or "0"
    start = int(cursor) if isinstance(cursor, str) and cursor.isdigit() else 0
    end = start + limit
    return {"items": items[start:end], "next_cursor": str(end) if end < len(items) else ""}


def get_groupmsg_task(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/get_groupmsg_task``: one row per member, ``status`` 0 not sent / 2 sent."""
    task = _task(state, req.body)
    rows: dict[str, dict[str, Any]] = {}
    for r in task.results:
        row = rows.setdefault(r.userid, {"userid": r.userid, "status": 0})
        if r.status != 0:
            row["status"] = 2
            row["send_time"] = max(row.get("send_time", 0), r.send_time or task.create_time)
    page = _page(req.body, list(rows.values()))
    return {"next_cursor": page["next_cursor"], "task_list": page["items"]}


def get_groupmsg_send_result(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/get_groupmsg_send_result`` for one member (``userid`` required)."""
    task = _task(state, req.body)
    userid = need_str(req.body, "userid", 41009)
    rows = []
    for r in task.results:
        if r.userid != userid:
            continue
        row: dict[str, Any] = {"userid": r.userid, "status": r.status}
        row.update({"external_userid": r.external_userid} if r.external_userid else {"chat_id": r.chat_id})
        if r.send_time is not None:
            row["send_time"] = r.send_time
        rows.append(row)
    page = _page(req.body, rows)
    return {"next_cursor": page["next_cursor"], "send_list": page["items"]}


def get_groupmsg_list_v2(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/get_groupmsg_list_v2`` ([W:93338]): tasks of ``chat_type`` created in
    [start_time, end_time] (≤ 1 month apart), optionally by ``creator``; every task here was created
    through the API, so ``create_type`` is 0 (企业发表) and ``filter_type`` 1 returns nothing."""
    b = req.body
    chat_type = need_str(b, "chat_type")
    start, end = opt_int(b, "start_time", -1), opt_int(b, "end_time", -1)
    if start < 0 or end < start or end - start > 31 * 86400:
        raise ApiError(INVALID_PARAM, "invalid start_time/end_time (at most one month apart)")
    creator, filter_type = b.get("creator"), opt_int(b, "filter_type", 2)
    items = [
        {"msgid": t.msgid, "creator": t.body.get("sender", ""), "create_type": 0, "create_time": t.create_time,
         **{k: t.body[k] for k in ("text", "attachments") if k in t.body}}
        for t in state.msg_templates.values()
        if t.chat_type == chat_type and start <= t.create_time <= end and filter_type != 1
        and (not creator or t.body.get("sender") == creator)
    ]  # fmt: skip
    page = _page({"limit": min(opt_int(b, "limit", 50), 100), "cursor": b.get("cursor")}, items)
    return {"next_cursor": page["next_cursor"], "group_msg_list": page["items"]}


def remind_groupmsg_send(state: SimState, req: ApiRequest) -> dict[str, Any]:
    task = _task(state, req.body)
    now = state.now()
    task.reminders = [t for t in task.reminders if now - t < timedelta(hours=24)]
    if len(task.reminders) >= 3:
        raise ApiError(API_LIMIT, "api freq out of limit")
    task.reminders.append(now)
    return {}


def _kf_row(m: KfMessage) -> dict[str, Any]:
    return {
        "msgid": m.msgid,
        "open_kfid": m.open_kfid,
        "external_userid": m.external_userid,
        "send_time": m.send_time,
        "origin": m.origin,
        "msgtype": m.msgtype,
        m.msgtype: m.content,
    }


def kf_sync_msg(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``kf/sync_msg`` (docs/platform.md#wecom-kf): pull customer messages/events; API-sent messages are not returned.

    ``next_cursor`` is always returned (also on the last page): syncing again from it returns only
    messages that arrived since, which is why the bot stores it per open_kfid. Our cursor is a position
    in the simulator's message log (the platform's is opaque)."""
    b = req.body
    token = b.get("token")
    if token:
        issued = state.kf_tokens.get(token) if isinstance(token, str) else None
        if issued is None or state.now() - issued >= KF_TOKEN_TTL:
            raise ApiError(95007, "invalid msg token")
    open_kfid = b.get("open_kfid")
    limit = opt_int(b, "limit", 1000)
    if not 1 <= limit <= 1000:
        raise ApiError(INVALID_PARAM, "limit must be 1..1000")
    cursor = b.get("cursor") or "0"
    pos = int(cursor) if isinstance(cursor, str) and cursor.isdigit() else 0
    horizon = state.ts() - int(KF_HISTORY.total_seconds())

    def wanted(m: KfMessage) -> bool:
        return m.send_time >= horizon and (not open_kfid or m.open_kfid == open_kfid)

    picked: list[dict[str, Any]] = []
    while pos < len(state.kf_messages) and len(picked) < limit:
        if wanted(state.kf_messages[pos]):
            picked.append(_kf_row(state.kf_messages[pos]))
        pos += 1
    has_more = any(wanted(m) for m in state.kf_messages[pos:])
    return {"next_cursor": str(pos), "has_more": 1 if has_more else 0, "msg_list": picked}


def kf_send_msg(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``kf/send_msg`` (docs/platform.md#wecom-kf): 48 h after the customer's last message, at most 5 messages."""
    b = req.body
    touser, open_kfid = need_str(b, "touser"), need_str(b, "open_kfid", 95000)
    need_str(b, "msgtype", 40008)
    window = state.kf_windows.get((open_kfid, touser))
    if window is None or state.now() - window.opened_at >= KF_WINDOW or window.used >= KF_WINDOW_MESSAGES:
        raise ApiError(95018, "send msg session status invalid")
    window.used += 1
    msgid = b.get("msgid") if isinstance(b.get("msgid"), str) and b.get("msgid") else state.new_id("", 32)
    state.delivered.append(Delivered("kf/send_msg", touser, state.now(), dict(b), str(msgid)))
    return {"msgid": msgid}


def message_send(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``message/send`` (app message): agentid must match (40056); unknown users are listed in
    ``invaliduser``; all invalid → 81013; text ≤ 2048 bytes (45002)."""
    b = req.body
    if b.get("agentid") != state.accounts.agent_id:
        raise ApiError(40056, "invalid agentid")
    msgtype = need_str(b, "msgtype", 40008)
    if msgtype == "text" and len(check_text(b, 2048).encode()) == 0:
        raise ApiError(44004, "empty content")
    users = [u for u in str(b.get("touser", "")).split("|") if u]
    valid = list(state.staff) if users == ["@all"] else [u for u in users if u in state.staff]
    invalid = [u for u in users if u != "@all" and u not in state.staff]
    if not valid:
        raise ApiError(81013, "user & party & tag all invalid")
    msgid = state.new_id("", 40)
    for user in valid:
        state.delivered.append(Delivered("message/send", user, state.now(), dict(b), msgid))
    return {"invaliduser": "|".join(invalid), "invalidparty": "", "invalidtag": "", "msgid": msgid}


ROUTES = {
    "externalcontact/add_msg_template": Route(add_msg_template),
    "externalcontact/get_groupmsg_task": Route(get_groupmsg_task),
    "externalcontact/get_groupmsg_send_result": Route(get_groupmsg_send_result),
    "externalcontact/remind_groupmsg_send": Route(remind_groupmsg_send),
    "externalcontact/get_groupmsg_list_v2": Route(get_groupmsg_list_v2),
    "kf/sync_msg": Route(kf_sync_msg),
    "kf/send_msg": Route(kf_send_msg),
    "message/send": Route(message_send),
}
