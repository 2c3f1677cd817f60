"""What the H5 pages (``handlers.interactions.h5``) may do for a signed-in customer: the business side of each endpoint.

``handlers.interactions.h5`` owns HTTP (OAuth, cookies, CSRF, rate limits) and runs each function here in one
transaction
(:func:`bot.actions.run_action`); this module only calls the domain functions and shapes JSON-ready
dicts. It satisfies :class:`handlers.interactions.h5.H5Actions` as a module.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.context import Context
from handlers.customers.identity import ensure_customer
from handlers.interactions.checkin import check_in as _check_in
from handlers.interactions.checkin import local_day
from handlers.interactions.content import interactions_of
from handlers.interactions.lottery.batch import draw_batched
from handlers.interactions.lottery.draw import draw as _draw
from handlers.interactions.points import balance
from handlers.interactions.referral import NoInviteCode, invite_code_for
from handlers.interactions.tables import Checkin


async def customer_for_openid(ctx: Context, openid: str) -> int:
    """The customer behind an Official Account openid (created on first visit)."""
    return (await ensure_customer(ctx, "openid", openid)).id


async def me(ctx: Context, customer_id: int) -> dict[str, Any]:
    """Points balance and the current streak (alive if the last check-in was today or yesterday)."""
    today = local_day(ctx.now(), ctx.settings.tz)
    last = (
        await ctx.session.execute(
            select(Checkin.local_day, Checkin.streak)
            .where(Checkin.customer_id == customer_id)
            .order_by(Checkin.local_day.desc())
            .limit(1)
        )
    ).first()
    alive = last is not None and last[0] in (today.isoformat(), (today - timedelta(days=1)).isoformat())
    return {
        "balance": await balance(ctx, customer_id),
        "streak": int(last[1]) if last is not None and alive else 0,
        "checked_in_today": last is not None and last[0] == today.isoformat(),
    }


async def check_in(ctx: Context, customer_id: int) -> dict[str, Any]:
    result = await _check_in(ctx, customer_id, "h5")
    return {"ok": True, "status": result.status.value, "text": result.text, "me": await me(ctx, customer_id)}


async def draw(ctx: Context, customer_id: int, campaign_id: str) -> dict[str, Any]:
    """A live stream's taps arrive together: the draw joins its campaign's batch
    (:mod:`handlers.interactions.lottery.batch`), committed in the batch's own transaction before this one reads
    the balance. ``ctx``'s transaction has written nothing before it, so on SQLite the batch never
    waits on it."""
    if ctx.services is not None:
        result = await draw_batched(ctx.services, customer_id, campaign_id, "h5")
    else:
        result = await _draw(ctx, customer_id, campaign_id, "h5")
    return {
        "ok": True,
        "outcome": result.outcome.value,
        "text": result.text,
        "prize": result.prize_name,
        "me": await me(ctx, customer_id),
    }


async def invite(ctx: Context, customer_id: int) -> dict[str, Any]:
    try:
        code = await invite_code_for(ctx, customer_id)
    except NoInviteCode as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "code": code.code, "qr_url": code.qr_url}


def campaign_name(ctx: Context, campaign_id: str) -> str | None:
    campaign = interactions_of(ctx.content).campaign(campaign_id)
    return campaign.name if campaign is not None else None
