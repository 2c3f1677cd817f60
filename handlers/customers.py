"""Customer identity: one row per person, kept current as friends and followers come and go.

Issue #3 (growth loop) adds attribution, tags and welcomes on top; this module only keeps the
facts every other feature needs (is this person a WeCom friend? an Official Account follower?).
"""

from __future__ import annotations

from sqlalchemy import select, update

from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from bot.dispatcher import Router
from bot.events import Followed, FriendAdded, FriendLost, FriendRemovedByStaff, Scanned, Unfollowed

router = Router("customers")


async def _ensure(ctx: Context, column: str, value: str) -> Customer:
    now = ctx.now()
    await insert_ignore(ctx.session, Customer, {column: value, "created_at": now, "updated_at": now}, [column])
    found = await ctx.session.scalar(select(Customer).where(getattr(Customer, column) == value))
    assert found is not None
    return found


@router.on(FriendAdded)
async def remember_new_friend(event: FriendAdded, ctx: Context) -> None:
    customer = await _ensure(ctx, "external_userid", event.external_userid)
    customer.wecom_friend = True
    customer.updated_at = ctx.now()


@router.on(FriendLost, FriendRemovedByStaff)
async def forget_friendship(event: FriendLost | FriendRemovedByStaff, ctx: Context) -> None:
    await ctx.session.execute(
        update(Customer)
        .where(Customer.external_userid == event.external_userid)
        .values(wecom_friend=False, updated_at=ctx.now())
    )


@router.on(Followed, Scanned)
async def remember_follower(event: Followed | Scanned, ctx: Context) -> None:
    customer = await _ensure(ctx, "openid", event.openid)
    customer.mp_follower = True
    customer.updated_at = ctx.now()


@router.on(Unfollowed)
async def forget_follower(event: Unfollowed, ctx: Context) -> None:
    await ctx.session.execute(
        update(Customer).where(Customer.openid == event.openid).values(mp_follower=False, updated_at=ctx.now())
    )
