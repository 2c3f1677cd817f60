"""Customer identity: one row per person, however many doors they came through.

A WeCom external contact (``external_userid``), an Official Account follower (``openid``) and a group
member are the same customer when the platform tells us their ``unionid``; two rows that turn out to be
one person are merged into the older one, carrying every touch, welcome, loss, tag and relation along.
"""

from __future__ import annotations

from sqlalchemy import select

from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from handlers.customers.events import CustomerCreated, CustomerMerged
from handlers.customers.merge import add_purchases, move_dependents


async def ensure_customer(ctx: Context, column: str, value: str) -> Customer:
    """The customer with ``column == value`` (external_userid, openid or unionid), created if new.

    ``INSERT … ON CONFLICT DO NOTHING`` then SELECT, so concurrent first arrivals never collide. A new
    row is announced to the other features as :class:`CustomerCreated`, in this transaction.
    """
    now = ctx.now()
    values = {column: value, "created_at": now, "updated_at": now}
    created = await insert_ignore(ctx.session, Customer, values, [column])
    found = await ctx.session.scalar(select(Customer).where(getattr(Customer, column) == value))
    assert found is not None
    if created:
        await ctx.emit(CustomerCreated(found.id, column, value))
    return found


async def find_customer(ctx: Context, column: str, value: str) -> Customer | None:
    found: Customer | None = await ctx.session.scalar(select(Customer).where(getattr(Customer, column) == value))
    return found


async def link_unionid(ctx: Context, customer: Customer, unionid: str) -> Customer:
    """Record ``unionid`` on ``customer``; if another row already has it, merge the two and return the survivor."""
    if not unionid or customer.unionid == unionid:
        return customer
    other = await find_customer(ctx, "unionid", unionid)
    if other is None or other.id == customer.id:
        customer.unionid = unionid
        customer.updated_at = ctx.now()
        return customer
    keep, drop = (other, customer) if other.id < customer.id else (customer, other)
    return await merge_customers(ctx, keep, drop, unionid)


async def merge_customers(ctx: Context, keep: Customer, drop: Customer, unionid: str | None = None) -> Customer:
    """Fold ``drop`` into ``keep``: identifiers, flags, first touch and every dependent row."""
    ids = {"external_userid": drop.external_userid, "openid": drop.openid, "unionid": unionid or drop.unionid}
    drop.external_userid = drop.openid = drop.unionid = None
    await ctx.session.flush()  # free the unique identifiers before the survivor takes them
    for column, value in ids.items():
        if value and getattr(keep, column) is None:
            setattr(keep, column, value)
    keep.wecom_friend = keep.wecom_friend or drop.wecom_friend
    keep.mp_follower = keep.mp_follower or drop.mp_follower
    keep.name = keep.name or drop.name
    if drop.first_touch_at is not None and (keep.first_touch_at is None or drop.first_touch_at < keep.first_touch_at):
        keep.first_touch_at, keep.first_channel = drop.first_touch_at, drop.first_channel
    add_purchases(keep, drop)
    keep.updated_at = ctx.now()
    await move_dependents(ctx.session, drop.id, keep.id)
    dropped = drop.id
    await ctx.session.delete(drop)
    await ctx.session.flush()
    await ctx.emit(CustomerMerged(keep.id, dropped))
    return keep
