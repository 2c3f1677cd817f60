"""Customer identity: one row per person, however many doors they came through.

A WeCom external contact (``external_userid``), an Official Account follower (``openid``) and a group
member are the same customer when the platform tells us their ``unionid``; two rows that turn out to be
one person are merged into the older one, carrying every touch, welcome, loss, tag and relation along.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from bot.context import Context
from bot.db.growth import CustomerTag, GroupMember, Loss, Touch, WeComRelation, Welcome
from bot.db.models import Customer
from bot.db.upsert import insert_ignore


async def ensure_customer(ctx: Context, column: str, value: str) -> Customer:
    """The customer with ``column == value`` (external_userid, openid or unionid), created if new.

    ``INSERT … ON CONFLICT DO NOTHING`` then SELECT, so concurrent first arrivals never collide.
    """
    now = ctx.now()
    await insert_ignore(ctx.session, Customer, {column: value, "created_at": now, "updated_at": now}, [column])
    found = await ctx.session.scalar(select(Customer).where(getattr(Customer, column) == value))
    assert found is not None
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
    keep.updated_at = ctx.now()
    await _move_dependents(ctx, drop.id, keep.id)
    await ctx.session.delete(drop)
    await ctx.session.flush()
    return keep


async def _move_dependents(ctx: Context, old: int, new: int) -> None:
    s = ctx.session
    for model in (Touch, Loss):  # unique per (receipt, customer): the survivor's row for a receipt wins
        kept = select(model.receipt_id).where(model.customer_id == new, model.receipt_id.is_not(None))
        await s.execute(delete(model).where(model.customer_id == old, model.receipt_id.in_(kept)))
    for moved in (Touch, Welcome, Loss):
        await s.execute(update(moved).where(moved.customer_id == old).values(customer_id=new))
    await s.execute(update(GroupMember).where(GroupMember.customer_id == old).values(customer_id=new))
    for tag in (await s.scalars(select(CustomerTag).where(CustomerTag.customer_id == old))).all():
        await insert_ignore(
            s, CustomerTag, {"customer_id": new, "tag": tag.tag, "source": tag.source, "created_at": tag.created_at},
            ["customer_id", "tag"],
        )  # fmt: skip
    await s.execute(delete(CustomerTag).where(CustomerTag.customer_id == old))
    for rel in (await s.scalars(select(WeComRelation).where(WeComRelation.customer_id == old))).all():
        values = {
            "customer_id": new, "staff_userid": rel.staff_userid, "channel_code": rel.channel_code,
            "added_at": rel.added_at, "removed_at": rel.removed_at, "active": rel.active,
        }  # fmt: skip
        await insert_ignore(s, WeComRelation, values, ["customer_id", "staff_userid"])
    await s.execute(delete(WeComRelation).where(WeComRelation.customer_id == old))
