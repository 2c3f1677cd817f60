"""Giving a :class:`~handlers.interactions.content.model.Reward`: points, tags, a coupon code, a lottery ticket.

Used by check-in milestones and lottery prizes, and meant for the referral reward too. Every part is
idempotent through ``ref`` (a points ledger ref, a coupon code's unique ``ref``, a ticket's unique ref),
so re-running the caller's transaction after a crash never gives twice. All writes go into ``ctx.session``.

- ``await grant_reward(ctx, customer_id, reward, reason, ref) -> Granted``
- ``await issue_coupon(ctx, pool_id, customer_id, ref) -> str | None`` — one code, never issued twice
- ``await grant_ticket(ctx, campaign_id, customer_id, ref) -> bool`` — a free extra draw (no points cost,
  outside the per-day / total limits), used by the next ``draw`` in that campaign
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from handlers.growth.synced import MP_TAG, WECOM_TAG, remote_ids
from handlers.growth.tables import CustomerTag, WeComRelation
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import Reward
from handlers.interactions.lottery.state import import_pool
from handlers.interactions.points import award
from handlers.interactions.tables import CouponCode, LotteryTicket

log = logging.getLogger(__name__)
_ISSUE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Granted:
    points: int = 0
    tags: tuple[str, ...] = ()
    coupon_code: str | None = None
    lottery: str | None = None  # campaign id of the ticket granted


async def grant_reward(ctx: Context, customer_id: int, reward: Reward, reason: str, ref: str) -> Granted:
    """Give every part of ``reward`` under ``ref``; parts given before (same ``ref``) are skipped."""
    points = reward.points if reward.points and await award(ctx, customer_id, reward.points, reason, ref) else 0
    if reward.tags:
        await add_tags(ctx, customer_id, reward.tags, source=reason, ref=ref)
    code = await issue_coupon(ctx, reward.coupon_pool, customer_id, ref) if reward.coupon_pool else None
    ticket = reward.lottery if reward.lottery and await grant_ticket(ctx, reward.lottery, customer_id, ref) else None
    return Granted(points, reward.tags, code, ticket)


async def issue_coupon(ctx: Context, pool_id: str, customer_id: int, ref: str) -> str | None:
    """One unissued code of ``pool_id`` for ``customer_id`` (the code already issued for ``ref`` if any).

    The code is taken by ONE conditional UPDATE: ``… WHERE code = (the first unissued code) AND issued_at
    IS NULL RETURNING code``. SQLite runs it under its write lock; on PostgreSQL the inner SELECT skips rows
    other issuers have locked (``FOR UPDATE SKIP LOCKED``), so concurrent issuers take different codes.
    The pool's CSV is imported on first use. None: the pool is exhausted (logged as an error).
    """
    s = ctx.session
    existing = await s.scalar(select(CouponCode.code).where(CouponCode.ref == ref))
    if existing is not None:
        return str(existing)
    first_free = (
        select(CouponCode.code)
        .where(CouponCode.pool_id == pool_id, CouponCode.issued_at.is_(None))
        .order_by(CouponCode.code)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    take = (
        update(CouponCode)
        .where(CouponCode.pool_id == pool_id, CouponCode.code == first_free, CouponCode.issued_at.is_(None))
        .values(customer_id=customer_id, issued_at=ctx.now(), ref=ref)
        .returning(CouponCode.code)
    )
    for attempt in range(_ISSUE_ATTEMPTS):
        code = (await s.execute(take)).scalar_one_or_none()
        if code is not None:
            return str(code)
        pool = interactions_of(ctx.content).coupon_pool(pool_id) if attempt == 0 else None
        if pool is None:
            break
        await import_pool(s, pool)  # first use (or another issuer imported it meanwhile): pick again
    log.error("coupon pool exhausted", extra={"pool_id": pool_id, "ref": ref})
    return None


async def grant_ticket(ctx: Context, campaign_id: str, customer_id: int, ref: str) -> bool:
    row = {"campaign_id": campaign_id, "customer_id": customer_id, "ref": f"bonus:{ref}", "created_at": ctx.now()}
    return await insert_ignore(ctx.session, LotteryTicket, row, ["campaign_id", "customer_id", "ref"])


async def add_tags(ctx: Context, customer_id: int, tags: tuple[str, ...], *, source: str, ref: str) -> None:
    """Tag locally (segments) and queue the platform tag calls where the customer is reachable."""
    now = ctx.now()
    for tag in tags:
        row = {"customer_id": customer_id, "tag": tag, "source": source[:32], "created_at": now}
        await insert_ignore(ctx.session, CustomerTag, row, ["customer_id", "tag"])
    customer = await ctx.session.get(Customer, customer_id)
    if customer is None:
        return
    if customer.external_userid:
        await _mark_wecom(ctx, customer_id, customer.external_userid, tags, ref)
    if customer.openid:
        ids = await remote_ids(ctx.session, MP_TAG, tags)
        for tag in tags:
            if tag in ids:
                body = {"openid_list": [customer.openid], "tagid": int(ids[tag])}
                ctx.call_platform("mp", "tags/members/batchtagging", body, key=f"global:reward_mptag:{ref}:{ids[tag]}")


async def _mark_wecom(ctx: Context, customer_id: int, external_userid: str, tags: tuple[str, ...], ref: str) -> None:
    """``externalcontact/mark_tag`` through one staff member the customer is still friends with."""
    userid = await ctx.session.scalar(
        select(WeComRelation.staff_userid)
        .where(WeComRelation.customer_id == customer_id, WeComRelation.active.is_(True))
        .order_by(WeComRelation.added_at)
        .limit(1)
    )
    ids = await remote_ids(ctx.session, WECOM_TAG, tags)
    if userid and ids:
        body = {"userid": userid, "external_userid": external_userid, "add_tag": [ids[t] for t in tags if t in ids]}
        ctx.call_platform("wecom", "externalcontact/mark_tag", body, key=f"global:reward_tag:{ref}")
