"""Following group-send tasks to a final state, and reconciling tasks interrupted mid-call.

A task created by ``add_msg_template`` waits for the owner's tap
(docs/platform.md#group-send-tasks). :func:`check_group_tasks` runs
from the scheduler: for each task whose check is due it queues ``get_groupmsg_task`` (one row per member:
status 0 not sent, 2 sent); once the owner sent it, ``get_groupmsg_send_result`` records each group's
status (1 sent, 2/3 failed) and the fire is ``confirmed``. Until then the owner is reminded with
``remind_groupmsg_send`` — at most 3 times in any 24 h (the platform's limit) and never more than
:data:`MAX_REMINDERS` in all; after :data:`GIVE_UP_AFTER` the fire is ``unconfirmed``. A fire whose
outbox call failed or expired becomes ``failed`` with the error.

Crash mid-call (docs/operations.md, "Outbox states"): a group-send task is not idempotent — sending twice creates two
tasks. :class:`TaskReconciler` is the outbox's reconciler for ``add_msg_template`` rows left ``sending``:
it asks ``get_groupmsg_list_v2`` (chat_type group, the time range since the row was queued, creator =
sender, filter_type 0 = created by the company) whether the platform has the task. Found → the row is
``sent`` and the fire gets its msgid; not found → ``pending``, so the outbox sends it (once) now.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bot.context import PRIORITY_BULK, Context
from bot.db.models import OutboxCall
from bot.dispatcher import PlatformResult, Router
from bot.outbox import split_payload
from bot.services import Services
from handlers.sop.events import GroupPostConfirmed
from handlers.sop.tables import GroupFire

FIRST_CHECK = timedelta(hours=1)  # when a created group-send task is first checked for confirmation
router = Router("group_sop_results")  # the follow-up of group-send tasks: task status, send results

ADD_MSG_TEMPLATE = "externalcontact/add_msg_template"
TASK_STATUS = "group_sop.task_status"
SEND_RESULT = "group_sop.send_result"
CHECK_EVERY = timedelta(hours=2)
REMIND_AFTER = timedelta(hours=1)  # the owner had an hour to tap "send" before the first reminder
REMIND_GAP = timedelta(hours=4)
REMINDS_PER_DAY = 3  # remind_groupmsg_send: ≤ 3 per message per 24 h (docs/platform.md#group-send-tasks)
MAX_REMINDERS = 3
GIVE_UP_AFTER = timedelta(days=3)
LIST_PAGES = 20


async def check_group_tasks(services: Services, limit: int = 200) -> int:
    """Fail fires whose call failed, then queue due confirmation checks. Returns checks queued."""
    now = services.clock.now()
    async with services.sessions() as session, session.begin():
        failed = await session.execute(
            select(GroupFire, OutboxCall.state, OutboxCall.last_error)
            .join(OutboxCall, OutboxCall.id == GroupFire.outbox_id)
            .where(GroupFire.state == "queued", OutboxCall.state.in_(("failed", "expired")))
        )
        for fire, state, error in failed.all():
            fire.state, fire.reason, fire.updated_at = "failed", f"{state}: {error or ''}"[:2000], now
        due = await session.execute(
            select(GroupFire.id, GroupFire.next_check_at)
            .where(GroupFire.state == "sent", GroupFire.next_check_at <= now, GroupFire.msgid.is_not(None))
            .order_by(GroupFire.next_check_at)
            .limit(limit)
        )
        todo = due.all()
    queued = 0
    for fire_id, check_at in todo:
        queued += await _queue_check(services, fire_id, check_at)
    return queued


async def _queue_check(services: Services, fire_id: int, check_at: datetime | None) -> int:
    """Claim one due check (a conditional UPDATE, so one replica queues it) and queue the read."""
    now = services.clock.now()
    async with services.sessions() as session, session.begin():
        claimed = await session.execute(
            update(GroupFire)
            .where(GroupFire.id == fire_id, GroupFire.next_check_at == check_at, GroupFire.state == "sent")
            .values(next_check_at=now + CHECK_EVERY, updated_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return 0
        fire = await session.get(GroupFire, fire_id)
        assert fire is not None and fire.msgid is not None
        ctx = Context(session, services.settings, services.clock, services.rng, None, services)
        if now - fire.created_at > GIVE_UP_AFTER:
            fire.state, fire.reason, fire.next_check_at = "unconfirmed", "the owner did not send the task", None
            return 0
        ctx.call_platform("wecom", "externalcontact/get_groupmsg_task", {"msgid": fire.msgid, "limit": 1000},
                          key=f"global:gsop-check:{fire_id}:{int(now.timestamp())}", priority=PRIORITY_BULK,
                          then=TASK_STATUS)  # fmt: skip
        new_calls = await ctx.flush_outbox()
    services.outbox.notify(new_calls)
    return 1


async def _by_msgid(ctx: Context, result: PlatformResult) -> GroupFire | None:
    msgid = result.request.get("msgid")
    if not isinstance(msgid, str):
        return None
    return await ctx.session.scalar(select(GroupFire).where(GroupFire.msgid == msgid))


def _recent_reminders(fire: GroupFire, now: datetime) -> list[str]:
    stamps = (fire.results or {}).get("reminded", [])
    return [t for t in stamps if now - datetime.fromisoformat(t) < timedelta(hours=24)]


@router.on_result(TASK_STATUS)
async def follow_task_status(result: PlatformResult, ctx: Context) -> None:
    """Owner sent it → read per-group results; not yet → maybe remind (≤ 3 per 24 h)."""
    fire = await _by_msgid(ctx, result)
    if fire is None or fire.state != "sent":
        return
    rows = [r for r in result.response.get("task_list") or [] if isinstance(r, dict)]
    if any(r.get("status") == 2 for r in rows):
        fire.state, fire.next_check_at, fire.updated_at = "confirmed", None, ctx.now()
        _queue_send_result(ctx, fire, "")
        await ctx.emit(GroupPostConfirmed(fire.id, fire.post_id, fire.target))
        return
    await _maybe_remind(ctx, fire)


async def _maybe_remind(ctx: Context, fire: GroupFire) -> None:
    now = ctx.now()
    recent = _recent_reminders(fire, now)
    last = max((datetime.fromisoformat(t) for t in recent), default=None)
    if now - fire.created_at < REMIND_AFTER or fire.reminders >= MAX_REMINDERS or len(recent) >= REMINDS_PER_DAY:
        return
    if last is not None and now - last < REMIND_GAP:
        return
    ctx.call_platform("wecom", "externalcontact/remind_groupmsg_send", {"msgid": fire.msgid},
                      key=f"global:gsop-remind:{fire.id}:{fire.reminders + 1}", priority=PRIORITY_BULK)  # fmt: skip
    results = dict(fire.results or {})
    results["reminded"] = [*recent, now.isoformat()]
    fire.results, fire.reminders, fire.updated_at = results, fire.reminders + 1, now


def _queue_send_result(ctx: Context, fire: GroupFire, cursor: str) -> None:
    body: dict[str, Any] = {"msgid": fire.msgid, "userid": fire.target.split(":", 1)[1].split("#")[0], "limit": 1000}
    if cursor:
        body["cursor"] = cursor
    ctx.call_platform("wecom", "externalcontact/get_groupmsg_send_result", body,
                      key=f"global:gsop-result:{fire.id}:{cursor or 0}", priority=PRIORITY_BULK,
                      then=SEND_RESULT)  # fmt: skip


@router.on_result(SEND_RESULT)
async def record_send_result(result: PlatformResult, ctx: Context) -> None:
    """Each group's status (0 not sent, 1 sent, 2/3 failed, docs/platform.md#group-send-tasks), page by page."""
    fire = await _by_msgid(ctx, result)
    if fire is None:
        return
    results = dict(fire.results or {})
    chats = dict(results.get("chats") or {})
    for row in result.response.get("send_list") or []:
        if isinstance(row, dict) and row.get("chat_id"):
            chats[str(row["chat_id"])] = row.get("status")
    results["chats"] = chats
    fire.results, fire.updated_at = results, ctx.now()
    cursor = result.response.get("next_cursor")
    if isinstance(cursor, str) and cursor:
        _queue_send_result(ctx, fire, cursor)


class TaskReconciler:
    """The outbox reconciler for ``externalcontact/add_msg_template`` (pass as ``reconcilers={API: it}``)."""

    def __init__(self, services: Services) -> None:
        self._s = services

    async def __call__(self, row: OutboxCall) -> str:
        body, _, _ = split_payload(row.payload)
        msgid = await self._find(row, body)
        if msgid is None:
            return "pending"  # the platform has no such task: the outbox sends it now, once
        await self._record(row, msgid)
        return "sent"

    async def _find(self, row: OutboxCall, body: dict[str, Any]) -> str | None:
        client = self._s.clients[row.platform]
        now = self._s.clock.now()
        query: dict[str, Any] = {
            "chat_type": body.get("chat_type", "group"),
            "start_time": int((row.created_at - timedelta(minutes=5)).timestamp()),
            "end_time": int((now + timedelta(minutes=5)).timestamp()),
            "creator": body.get("sender"),
            "filter_type": 0,
            "limit": 100,
        }
        text = (body.get("text") or {}).get("content")
        for _ in range(LIST_PAGES):
            answer = await client.call("externalcontact/get_groupmsg_list_v2", query)
            for item in answer.get("group_msg_list") or []:
                if item.get("creator") == body.get("sender") and (item.get("text") or {}).get("content") == text:
                    return str(item["msgid"])
            if not answer.get("next_cursor"):
                return None
            query["cursor"] = answer["next_cursor"]
        return None

    async def _record(self, row: OutboxCall, msgid: str) -> None:
        assert self._s.sessions is not None
        now = self._s.clock.now()
        async with self._s.sessions() as session, session.begin():
            await session.execute(
                update(GroupFire)
                .where(GroupFire.outbox_id == row.id, GroupFire.msgid.is_(None))
                .values(msgid=msgid, state="sent", next_check_at=now + FIRST_CHECK, updated_at=now,
                        results={"chats": {}, "reminded": [], "reconciled": True})
            )  # fmt: skip


def reconcilers(services: Services) -> dict[str, TaskReconciler]:
    """What to pass as ``OutboxWorker(..., reconcilers=...)``."""
    return {ADD_MSG_TEMPLATE: TaskReconciler(services)}
