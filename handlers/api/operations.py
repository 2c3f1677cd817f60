"""``/api/v1/`` channels and their figures, receipts (events) and their retry, orders in, health, audit."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, func, select, text, update

from bot.config import secret_values
from bot.db.models import AccessToken, OutboxCall, Receipt
from bot.logs import RedactSecrets
from handlers.api.http import (
    Call,
    Problem,
    audit_entry,
    decode_cursor,
    invalid,
    json_body,
    json_response,
    limit_of,
    not_found,
    page,
    resource_response,
)
from handlers.api.tables import AuditEntry
from handlers.growth.content import channels_of
from handlers.growth.stats import UNATTRIBUTED, ChannelStats, channel_stats
from handlers.orders.payload import PayloadInvalid, order_event_from_payload

RECEIPT_STATUSES = ("pending", "done", "failed")
HEALTH_DB_TIMEOUT = 2.0


# --- channels ---


async def channels(call: Call) -> web.Response:
    items = [
        {"code": c.code, "name": c.name, "platform": str(c.platform), "tags": list(c.tags)}
        for c in channels_of(call.services.content).channels
    ]
    return json_response({"items": items, "next_cursor": None})


def _day(call: Call, name: str) -> datetime | None:
    raw = call.request.query.get(name)
    if raw is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), time(0), call.services.settings.tz)
    except ValueError:
        raise invalid(name, "must be a local day YYYY-MM-DD (the configured timezone)") from None


def stats_body(code: str, st: ChannelStats) -> dict[str, Any]:
    return {
        "code": code,
        "adds": st.adds,
        "unique": st.unique,
        "losses": st.losses,
        "net": st.net,
        "welcomes": {k: st.welcomes[k] for k in ("delivered", "expired", "failed", "unknown", "pending", "skipped")},
        "variants": dict(sorted(st.variants.items())),
        "retention_7d": st.retention_7d,
    }


async def channel_figures(call: Call) -> web.Response:
    """The figures of ``siyu-bot stats channels`` for one code (``unattributed`` for arrivals without one)."""
    code = call.param("code")
    label = UNATTRIBUTED if code == "unattributed" else code
    if label != UNATTRIBUTED and channels_of(call.services.content).channel(code) is None:
        raise not_found(f"channel {code!r}")
    since, until = _day(call, "since"), _day(call, "until")
    async with call.services.sessions() as session:
        stats = await channel_stats(session, call.services.clock.now(), since, until)
    body = stats_body(code, stats.get(label) or ChannelStats(label))
    body.update(since=since, until=until)
    return resource_response(call.request, body)


# --- events (receipts) ---


def receipt_body(r: Receipt) -> dict[str, Any]:
    return {
        "id": r.id,
        "platform": r.platform,
        "kind": r.kind,
        "status": r.status,
        "attempts": r.attempts,
        "received_at": r.received_at,
        "finished_at": r.finished_at,
        "error": r.error,
    }


async def events(call: Call) -> web.Response:
    q, limit, cursor = call.request.query, limit_of(call.request), decode_cursor(call.request)
    where: list[ColumnElement[bool]] = []
    if "status" in q:
        if q["status"] not in RECEIPT_STATUSES:
            raise invalid("status", f"must be one of {', '.join(RECEIPT_STATUSES)}")
        where.append(Receipt.status == q["status"])
    if "kind" in q:
        where.append(Receipt.kind == q["kind"])
    if cursor is not None:
        if not isinstance(cursor[0], int):
            raise invalid("cursor", "not a cursor this API handed out")
        where.append(Receipt.id < cursor[0])
    async with call.services.sessions() as session:
        rows = (await session.scalars(select(Receipt).where(*where).order_by(Receipt.id.desc()).limit(limit + 1))).all()
    return json_response(page([receipt_body(r) for r in rows], limit, lambda i: [i["id"]]))


async def retry_event(call: Call) -> web.Response:
    """A failed receipt back to pending: the inbox's sweeper runs it again on its next pass."""
    rid = call.int_param("id")
    now = call.services.clock.now()
    async with call.services.sessions() as session, session.begin():
        receipt = await session.get(Receipt, rid)
        if receipt is None:
            raise not_found(f"event {rid}")
        if receipt.status != "failed":
            raise Problem(409, "Not failed", f"event {rid} is {receipt.status}: only a failed event is retried")
        before = receipt_body(receipt)
        await session.execute(
            update(Receipt)
            .where(Receipt.id == rid, Receipt.status == "failed")
            .values(
                status="pending",
                owner=None,
                attempts=0,
                error=None,
                finished_at=None,
                lease_until=now - timedelta(seconds=1),
            )
        )
        await session.refresh(receipt)
        after = receipt_body(receipt)
        audit_entry(session, call, f"receipt:{rid}", before, after)
    return json_response(after, status=202)


# --- orders ---


async def post_order(call: Call) -> web.Response:
    """The signed order webhook's payload and validation; stored as a receipt the same way."""
    payload = await json_body(call.request)
    try:
        event = order_event_from_payload(payload, call.services.clock.now())
    except PayloadInvalid as exc:
        raise Problem(400, "Invalid order", str(exc), errors=[{"field": exc.field, "reason": exc.reason}]) from None
    try:
        claim = await call.services.writer.claim(event)
    except Exception:
        raise Problem(503, "Try again", "the order could not be stored now", headers={"Retry-After": "1"}) from None
    order_id = str(payload["data"]["order_id"])
    if claim.receipt_id is None:
        return json_response({"status": "duplicate", "order_id": order_id, "receipt_id": None})
    if claim.dispatch:
        call.services.dispatcher.submit(claim.receipt_id, event)
    async with call.services.sessions() as session, session.begin():
        audit_entry(session, call, f"order:{order_id}", None, {"receipt_id": claim.receipt_id, "payload": payload})
    return json_response({"status": "accepted", "order_id": order_id, "receipt_id": claim.receipt_id}, status=202)


# --- health ---


async def _database_figures(call: Call) -> dict[str, Any]:
    scrub = RedactSecrets(secret_values(call.services.settings)).scrub
    now = call.services.clock.now()
    async with call.services.sessions() as session:
        await session.execute(text("SELECT 1"))
        states = dict((await session.execute(select(OutboxCall.state, func.count()).group_by(OutboxCall.state))).all())
        tokens = (await session.execute(select(AccessToken.key, AccessToken.token != "", AccessToken.expires_at))).all()
        failed_receipts = (
            await session.scalars(
                select(Receipt).where(Receipt.status == "failed").order_by(Receipt.id.desc()).limit(5)
            )
        ).all()
        failed_calls = (
            await session.scalars(
                select(OutboxCall)
                .where(OutboxCall.state.in_(("failed", "expired", "uncertain")))
                .order_by(OutboxCall.id.desc())
                .limit(5)
            )
        ).all()
    token_state: dict[str, dict[str, Any]] = {}
    for platform, client in call.services.clients.items():
        manager = getattr(client, "token_manager", None)
        if manager is None:
            continue
        row = next((t for t in tokens if t[0] == manager.key), None)
        state = "missing" if row is None or not row[1] else ("valid" if row[2] > now else "expired")
        token_state[platform] = {"state": state, "expires_at": row[2] if row and row[1] else None}
    if call.services.settings.redis.url.get():
        token_state = {p: {"state": "in_redis", "expires_at": None} for p in token_state}
    return {
        "outbox": {str(k): int(v) for k, v in states.items()},
        "tokens": token_state,
        "last_errors": {
            "events": [
                {"id": r.id, "kind": r.kind, "error": scrub(r.error or ""), "at": r.finished_at}
                for r in failed_receipts
            ],
            "platform_calls": [
                {"id": c.id, "api": c.api, "state": c.state, "error": scrub(c.last_error or ""), "at": c.finished_at}
                for c in failed_calls
            ],
        },
    }


async def health(call: Call) -> web.Response:
    try:
        figures = await asyncio.wait_for(_database_figures(call), HEALTH_DB_TIMEOUT)
    except Exception as exc:
        body = {
            "status": "degraded",
            "database": type(exc).__name__,
            "tokens": {},
            "outbox": {},
            "last_errors": {"events": [], "platform_calls": []},
        }
        return json_response(body, status=503)
    return json_response({"status": "ok", "database": "ok", **figures})


# --- audit ---


async def audit(call: Call) -> web.Response:
    limit, cursor = limit_of(call.request), decode_cursor(call.request)
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if cursor is not None:
        if not isinstance(cursor[0], int):
            raise invalid("cursor", "not a cursor this API handed out")
        query = query.where(AuditEntry.id < cursor[0])
    async with call.services.sessions() as session:
        rows = (await session.scalars(query)).all()
    items = [
        {
            "id": a.id,
            "key": a.key_name,
            "method": a.method,
            "path": a.path,
            "resource": a.resource,
            "at": a.at,
            "before": a.before,
            "after": a.after,
        }
        for a in rows
    ]
    return json_response(page(items, limit, lambda i: [i["id"]]))
