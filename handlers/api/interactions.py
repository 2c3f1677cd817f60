"""``/api/v1/checkins/stats`` and ``/api/v1/lottery/campaigns``: what ``siyu-bot lottery status|kill|resume|verify``
shows and does, from the same queries (:mod:`handlers.interactions.lottery.admin`), and check-in figures."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.api.http import (
    Call,
    Problem,
    audit_entry,
    id_cursor,
    invalid,
    json_body,
    json_response,
    limit_of,
    not_found,
    page,
    query_int,
    resource_response,
)
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import Campaign, PrizeKind
from handlers.interactions.lottery.admin import campaign_report, verify_campaign
from handlers.interactions.lottery.state import campaign_state, set_killed
from handlers.interactions.tables import Checkin, Draw

MAX_REASON = 500


# --- check-ins ---


async def checkin_stats(call: Call) -> web.Response:
    """Per local day of the last ``days``: check-ins, customers, points; and customers by their best streak."""
    days = query_int(call.request, "days", 1, 366, 30) or 30
    tz = call.services.settings.tz
    first = (call.services.clock.now().astimezone(tz) - timedelta(days=days - 1)).date().isoformat()
    window = Checkin.local_day >= first
    async with call.services.sessions() as session:
        per_day = (
            await session.execute(
                select(
                    Checkin.local_day,
                    func.count(),
                    func.count(func.distinct(Checkin.customer_id)),
                    func.sum(Checkin.points),
                )
                .where(window)
                .group_by(Checkin.local_day)
                .order_by(Checkin.local_day)
            )
        ).all()
        best = select(func.max(Checkin.streak).label("streak")).where(window).group_by(Checkin.customer_id).subquery()
        streaks = (await session.execute(select(best.c.streak, func.count()).group_by(best.c.streak))).all()
    return json_response(
        {
            "since": first,
            "days": [
                {"day": d, "checkins": int(n), "customers": int(c), "points": int(p or 0)} for d, n, c, p in per_day
            ],
            "total": sum(int(n) for _, n, _, _ in per_day),
            "streaks": {str(s): int(n) for s, n in sorted(streaks)},
        }
    )


# --- lottery campaigns (the content is read here only) ---


def _campaigns(call: Call) -> tuple[Campaign, ...]:
    return tuple(interactions_of(call.services.content).campaigns)


def _campaign(call: Call) -> Campaign:
    campaign_id = call.param("campaign_id")
    found = next((c for c in _campaigns(call) if c.id == campaign_id), None)
    if found is None:
        raise not_found(f"campaign {campaign_id!r}")
    return found


async def _report(session: AsyncSession, call: Call, campaign: Campaign) -> dict[str, Any]:
    state = await campaign_state(session, campaign.id)
    return asdict(await campaign_report(session, campaign, state, call.services.clock.now()))


async def campaigns(call: Call) -> web.Response:
    async with call.services.sessions() as session:
        items = [await _report(session, call, c) for c in _campaigns(call)]
    return json_response({"items": items, "next_cursor": None})


async def campaign(call: Call) -> web.Response:
    """One campaign's figures, with its winners (draws of a prize) paginated by draw id."""
    found = _campaign(call)
    limit, after = limit_of(call.request), id_cursor(call.request)
    no_prize = [p.id for p in found.prizes if p.kind is PrizeKind.NONE]
    where = [Draw.campaign_id == found.id, Draw.prize_id.is_not(None), Draw.prize_id.not_in(no_prize)]
    if after is not None:
        where.append(Draw.id > after)
    async with call.services.sessions() as session:
        body = await _report(session, call, found)
        draws = (await session.scalars(select(Draw).where(*where).order_by(Draw.id).limit(limit + 1))).all()
    winners = [
        {"draw_id": d.id, "seq": d.seq, "customer_id": d.customer_id, "prize_id": d.prize_id, "drawn_at": d.drawn_at}
        for d in draws
    ]
    body["winners"] = page(winners, limit, lambda i: [i["draw_id"]])
    return resource_response(call.request, body)


async def _switch(call: Call, killed: bool) -> web.Response:
    reason = None
    if killed:
        body = await json_body(call.request)
        reason = body.get("reason") if isinstance(body, dict) else None
    return json_response(await switch_campaign(call, killed, reason))


async def switch_campaign(call: Call, killed: bool, reason: object) -> dict[str, Any]:
    """Kill (``reason`` required) or resume the campaign named by the ``campaign_id`` path parameter, audited."""
    found = _campaign(call)
    why: str | None = None
    if killed:
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise invalid("reason", f"must be a non-empty string of at most {MAX_REASON} characters")
        why = reason
    async with call.services.sessions() as session, session.begin():
        if await campaign_state(session, found.id) is None:
            raise Problem(409, "No state yet", f"campaign {found.id!r} has no state yet: run `siyu-bot lottery status`")
        before = await _report(session, call, found)
        await set_killed(session, found.id, killed, why)
        await session.flush()
        session.expire_all()
        after = await _report(session, call, found)
        audit_entry(session, call, f"campaign:{found.id}", before, after)
    return after


async def kill(call: Call) -> web.Response:
    return await _switch(call, True)


async def resume(call: Call) -> web.Response:
    return await _switch(call, False)


async def verify(call: Call) -> web.Response:
    """After the end: reveal the seed and recompute every draw (``siyu-bot lottery verify``)."""
    found = _campaign(call)
    now = call.services.clock.now()
    if now < found.ends_at:
        raise Problem(409, "Still running", f"{found.id} runs until {found.ends_at.isoformat()}: the seed stays secret")
    async with call.services.sessions() as session, session.begin():
        result = await verify_campaign(session, found, now)
        if result is None:
            raise Problem(409, "No state", f"campaign {found.id!r} never had a draw (no state)")
        body = {**asdict(result), "ok": result.ok}
        audit_entry(session, call, f"campaign:{found.id}", None, {"verified": result.ok, "revealed": True})
    return json_response(body)
