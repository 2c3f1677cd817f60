"""``/api/v1/sop/``: drip enrolments with their steps, group-post fires, and what ``siyu-bot sop preview`` and
``sop status`` show (the same queries: :mod:`handlers.sop.reports`, :mod:`handlers.sop.status`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import aliased

from bot.config import secret_values
from bot.logs import RedactSecrets
from handlers.api.customers import enrolment_body
from handlers.api.http import Call, id_cursor, json_response, limit_of, page, query_choice, query_int
from handlers.sop.group_sop import MARKER, owner_of
from handlers.sop.reports import drip_plan, post_plan
from handlers.sop.status import sop_status
from handlers.sop.tables import DripEnrolment, DripStepRun, GroupFire

ENROLMENT_STATES = ("active", "stopped", "completed")
# A fire's own state (its marker row: firing, done, missed) or one of its targets'.
FIRE_STATES = ("firing", "done", "missed", "pending", "queued", "sent", "confirmed", "unconfirmed", "failed", "skipped")
AWAITING_OWNER = ("pending", "queued", "sent", "unconfirmed")  # an owner's task not (yet) confirmed sent
MAX_PREVIEW_DAYS = 31
MAX_PREVIEW_STEPS = 5000


def _step(s: DripStepRun) -> dict[str, Any]:
    return {
        "step_id": s.step_id,
        "due_at": s.due_at,
        "state": s.state,
        "reason": s.reason,
        "finished_at": s.finished_at,
    }


async def enrolments(call: Call) -> web.Response:
    """Drip enrolments by id, each with its steps (in due order)."""
    request = call.request
    limit, after = limit_of(request), id_cursor(request)
    where: list[ColumnElement[bool]] = []
    customer_id = query_int(request, "customer_id", 1, 10**18)
    if customer_id is not None:
        where.append(DripEnrolment.customer_id == customer_id)
    if "drip_id" in request.query:
        where.append(DripEnrolment.drip_id == request.query["drip_id"])
    state = query_choice(request, "state", ENROLMENT_STATES)
    if state is not None:
        where.append(DripEnrolment.state == state)
    if after is not None:
        where.append(DripEnrolment.id > after)
    async with call.services.sessions() as session:
        rows = (
            await session.scalars(select(DripEnrolment).where(*where).order_by(DripEnrolment.id).limit(limit + 1))
        ).all()
        ids = [e.id for e in rows[:limit]]
        steps = (
            await session.scalars(
                select(DripStepRun)
                .where(DripStepRun.enrolment_id.in_(ids))
                .order_by(DripStepRun.due_at, DripStepRun.id)
            )
        ).all()
    by: dict[int, list[dict[str, Any]]] = {}
    for s in steps:
        by.setdefault(s.enrolment_id, []).append(_step(s))
    items = [{"id": e.id, "customer_id": e.customer_id, **enrolment_body(e), "steps": by.get(e.id, [])} for e in rows]
    return json_response(page(items, limit, lambda i: [i["id"]]))


def _target(f: GroupFire) -> dict[str, Any]:
    return {
        "target": f.target,
        "state": f.state,
        "reason": f.reason,
        "groups": len((f.chat_ids or {}).get("chat_ids", [])),
        "reminders": f.reminders,
        "updated_at": f.updated_at,
    }


async def fires(call: Call) -> web.Response:
    """Group-post fires, newest first: the fire's state, each target's, and the owners who have not confirmed."""
    request = call.request
    limit, before = limit_of(request), id_cursor(request)
    where: list[ColumnElement[bool]] = [GroupFire.target == MARKER]
    if "post_id" in request.query:
        where.append(GroupFire.post_id == request.query["post_id"])
    state = query_choice(request, "state", FIRE_STATES)
    if state is not None:
        target = aliased(GroupFire)
        of_fire = (target.post_id == GroupFire.post_id, target.fire_at == GroupFire.fire_at)
        where.append(exists().where(*of_fire, target.state == state))  # the marker itself included
    if before is not None:
        where.append(GroupFire.id < before)
    async with call.services.sessions() as session:
        markers = (
            await session.scalars(select(GroupFire).where(*where).order_by(GroupFire.id.desc()).limit(limit + 1))
        ).all()
        shown = [and_(GroupFire.post_id == m.post_id, GroupFire.fire_at == m.fire_at) for m in markers[:limit]]
        targets: list[GroupFire] = []
        if shown:
            query = select(GroupFire).where(or_(*shown), GroupFire.target != MARKER).order_by(GroupFire.target)
            targets = list((await session.scalars(query)).all())
    by: dict[tuple[str, Any], list[GroupFire]] = {}
    for t in targets:
        by.setdefault((t.post_id, t.fire_at), []).append(t)
    items = []
    for m in markers:
        mine = by.get((m.post_id, m.fire_at), [])
        waiting = {owner_of(t.target) for t in mine if t.target.startswith("owner:") and t.state in AWAITING_OWNER}
        items.append(
            {
                "id": m.id,
                "post_id": m.post_id,
                "fire_at": m.fire_at,
                "delivery": m.delivery,
                "state": m.state,
                "reason": m.reason,
                "targets": [_target(t) for t in mine],
                "unconfirmed_owners": sorted(waiting),
            }
        )
    return json_response(page(items, limit, lambda i: [i["id"]]))


async def preview(call: Call) -> web.Response:
    """What ``siyu-bot sop preview --days N`` computes: would-be sends with the budget's decisions."""
    days = query_int(call.request, "days", 1, MAX_PREVIEW_DAYS, 7) or 7
    limit = query_int(call.request, "limit", 1, MAX_PREVIEW_STEPS, 1000) or 1000
    services = call.services
    now, tz = services.clock.now(), services.settings.tz
    until = now + timedelta(days=days)
    async with services.sessions() as session:  # only reads; closed without a commit
        steps, total = await drip_plan(session, services.content, now, until, tz, limit)
        posts = await post_plan(session, services.content, now, until, tz)
    rows = sorted([*steps, *posts], key=lambda r: (r.due, r.kind, r.who))
    return json_response(
        {"from": now, "until": until, "drip_steps_total": total, "limit": limit, "items": [asdict(r) for r in rows]}
    )


async def status(call: Call) -> web.Response:
    """The figures of ``siyu-bot sop status`` (platform errors scrubbed of secrets)."""
    latest = query_int(call.request, "latest", 0, 100, 10) or 0
    async with call.services.sessions() as session:
        figures = await sop_status(session, call.services.clock.now(), latest)
    body = asdict(figures)
    scrub = RedactSecrets(secret_values(call.services.settings)).scrub
    for issue in body["latest_calls"]:
        issue["error"] = scrub(issue["error"]) if issue["error"] else issue["error"]
    return json_response(body)
