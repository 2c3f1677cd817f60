"""微信客服 (kf): pull the customers' messages, answer them with the keyword engine (docs/platform.md#wecom-kf).

``kf_msg_or_event`` carries no content, only a sync ``token`` (valid 10 minutes) and the ``open_kfid``.
The notification queues ``kf/sync_msg`` from the stored cursor; its answer comes back to
:func:`answer_kf_messages` (``then="kf_sync"``), which — in ONE transaction — moves the cursor
(conditionally: only from the cursor the call was made with), handles each customer text and queues the
``kf/send_msg`` replies. A result that lost the race to another sync of the same account is dropped
and a fresh sync from the stored cursor is queued, so every message is handled exactly once.

Reply limits: within 48 h after the customer's last message and at most 5 messages until the customer
writes again. We count our replies queued since the customer's latest message (outbox rows keyed
``global:kf:<open_kfid>:<external_userid>:<msgid>``) and skip with a logged reason beyond that.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from bot.context import PRIORITY_REPLY, Context
from bot.db.models import OutboxCall
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.events import KfMessagesPending
from handlers.customers.identity import ensure_customer
from handlers.interactions.keywords import Answer, answer_rule, find_rule
from handlers.interactions.tables import KfCursor

log = logging.getLogger(__name__)
router = Router("kf")

TOKEN_TTL = timedelta(minutes=10)  # the callback's sync token
REPLY_WINDOW = timedelta(hours=48)  # after the customer's last message …
REPLY_LIMIT = 5  # … at most this many messages
ORIGIN_CUSTOMER = 3  # msg_list origin: 3 customer, 4 system event, 5 servicer
SYNC_LIMIT = 1000


def _sync_call(ctx: Context, open_kfid: str, cursor: str, token: str, deadline: datetime, key: str) -> None:
    body: dict[str, Any] = {"open_kfid": open_kfid, "token": token, "limit": SYNC_LIMIT}
    if cursor:
        body["cursor"] = cursor
    ctx.call_platform("wecom", "kf/sync_msg", body, key=key, priority=PRIORITY_REPLY, deadline=deadline, then="kf_sync")


@router.on(KfMessagesPending)
async def pull_kf_messages(event: KfMessagesPending, ctx: Context) -> None:
    """Queue ``kf/sync_msg`` from the stored cursor; past the token's 10 minutes the call expires
    (the next customer message brings a new token and the cursor still holds our place)."""
    await insert_ignore(
        ctx.session, KfCursor, {"open_kfid": event.open_kfid, "cursor": "", "updated_at": ctx.now()}, ["open_kfid"]
    )
    cursor = await ctx.session.scalar(select(KfCursor.cursor).where(KfCursor.open_kfid == event.open_kfid))
    deadline = datetime.fromtimestamp(event.create_time, UTC) + TOKEN_TTL
    _sync_call(ctx, event.open_kfid, cursor or "", event.token, deadline, key="kf-sync")


async def _advance_cursor(ctx: Context, open_kfid: str, used: str, next_cursor: str) -> bool:
    """Move the cursor from ``used`` to ``next_cursor``; False if another sync moved it first."""
    moved = await ctx.session.execute(
        update(KfCursor)
        .where(KfCursor.open_kfid == open_kfid, KfCursor.cursor == used)
        .values(cursor=next_cursor or used, updated_at=ctx.now())
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount)  # type: ignore[attr-defined]


@router.on_result("kf_sync")
async def answer_kf_messages(result: PlatformResult, ctx: Context) -> None:
    req, resp = result.request, result.response
    open_kfid, used, token = str(req["open_kfid"]), str(req.get("cursor") or ""), str(req.get("token") or "")
    next_cursor = str(resp.get("next_cursor") or "")
    deadline = ctx.now() + TOKEN_TTL  # the platform rejects a stale token itself (95007)
    if not await _advance_cursor(ctx, open_kfid, used, next_cursor):
        stored = await ctx.session.scalar(select(KfCursor.cursor).where(KfCursor.open_kfid == open_kfid))
        log.info("kf sync lost the race; syncing again from the stored cursor", extra={"open_kfid": open_kfid})
        _sync_call(ctx, open_kfid, stored or "", token, deadline, key=f"kf-sync:after:{stored}")
        return
    messages = [m for m in resp.get("msg_list") or () if isinstance(m, dict)]
    await handle_kf_messages(ctx, open_kfid, messages)
    if resp.get("has_more") and next_cursor:
        _sync_call(ctx, open_kfid, next_cursor, token, deadline, key=f"kf-sync:{next_cursor}")


def _latest_by_customer(messages: Sequence[dict[str, Any]]) -> dict[str, int]:
    latest: dict[str, int] = {}
    for m in messages:
        if m.get("origin") == ORIGIN_CUSTOMER and m.get("external_userid"):
            user = str(m["external_userid"])
            latest[user] = max(latest.get(user, 0), int(m.get("send_time") or 0))
    return latest


async def handle_kf_messages(ctx: Context, open_kfid: str, messages: Sequence[dict[str, Any]]) -> None:
    """Answer each customer text (in order) with the keyword engine, within the reply limits."""
    latest = _latest_by_customer(messages)
    for m in messages:
        if m.get("origin") != ORIGIN_CUSTOMER or m.get("msgtype") != "text" or not m.get("msgid"):
            continue
        user, text = str(m.get("external_userid") or ""), str((m.get("text") or {}).get("content") or "")
        rule = find_rule(ctx, text, "kf") if user and text else None
        if rule is None:
            continue
        sent_at = datetime.fromtimestamp(int(m.get("send_time") or 0), UTC)
        skip = await _why_not_reply(ctx, open_kfid, user, sent_at, datetime.fromtimestamp(latest[user], UTC))
        if skip is not None:
            _skipped(ctx, open_kfid, str(m["msgid"]), skip)
            continue
        customer = await ensure_customer(ctx, "external_userid", user)
        answer = await answer_rule(ctx, rule, customer, "kf")
        if answer is not None and (answer.text or answer.link):
            _reply(ctx, open_kfid, user, str(m["msgid"]), answer)


async def _why_not_reply(ctx: Context, open_kfid: str, user: str, sent_at: datetime, last: datetime) -> str | None:
    if ctx.now() - last >= REPLY_WINDOW:
        return "more than 48 h after the customer's last message"
    if ctx.now() - sent_at >= REPLY_WINDOW:
        return "message older than 48 h"
    sent = await ctx.session.scalar(
        select(func.count())
        .select_from(OutboxCall)
        .where(
            OutboxCall.api == "kf/send_msg",
            OutboxCall.idempotency_key.like(f"global:kf:{open_kfid}:{user}:%"),
            OutboxCall.created_at >= last,
        )
    )
    if (sent or 0) >= REPLY_LIMIT:
        return f"{REPLY_LIMIT} messages already sent since the customer's last message"
    return None


def _skipped(ctx: Context, open_kfid: str, msgid: str, reason: str) -> None:
    log.info("kf reply skipped: %s", reason, extra={"open_kfid": open_kfid, "msgid": msgid})
    metrics = getattr(ctx.services, "metrics", None)
    if metrics is not None:
        metrics.inc("siyu_kf_replies_total", outcome="skipped")


def _reply_key(open_kfid: str, user: str, msgid: str) -> str:
    """Global (a message is answered once, whichever sync saw it); the prefix is what the limit counts."""
    key = f"global:kf:{open_kfid}:{user}:{msgid}"
    return key if len(key) <= 128 else f"global:kf:{open_kfid}:{user}:{hashlib.sha256(msgid.encode()).hexdigest()[:16]}"


def _reply(ctx: Context, open_kfid: str, user: str, msgid: str, answer: Answer) -> None:
    text = answer.text
    if answer.link is not None:  # kf "link" needs an uploaded thumb; a line with the URL works everywhere
        text = f"{text}\n{answer.link.title}：{answer.link.url}".strip()
    body = {"touser": user, "open_kfid": open_kfid, "msgtype": "text", "text": {"content": text}}
    ctx.call_platform(
        "wecom", "kf/send_msg", body, key=_reply_key(open_kfid, user, msgid), priority=PRIORITY_REPLY,
        deadline=ctx.now() + REPLY_WINDOW,
    )  # fmt: skip
