"""A customer's handover succeeded: what pointed at the old member now points at the successor.

* Ownership: the relationship with the old member ends, the successor's begins (``wecom_relations``),
  keeping the channel the customer came from — so drips, which send through the member the customer
  most recently added (:func:`handlers.sop.drip_enrol.active_staff`), go out through the successor.
* Attribution: the customer's touches credited to the old member are credited to the successor.
* Referral: the customer's personal 联系我 invite code, owned by the old member, is moved to the
  successor (``externalcontact/update_contact_way``) so invitees keep arriving at a member who is there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from bot.context import Context
from bot.db.upsert import insert_ignore
from handlers.growth.tables import Touch, WeComRelation
from handlers.interactions.tables import ReferralCode


async def repoint(ctx: Context, customer_id: int, old: str, new: str, at: datetime) -> None:
    code_owner = await _code_owner(ctx, customer_id)
    rel = await ctx.session.get(WeComRelation, (customer_id, old))
    channel = rel.channel_code if rel is not None else None
    if rel is not None:
        rel.active, rel.removed_at = False, at
    values = {"customer_id": customer_id, "staff_userid": new, "channel_code": channel, "added_at": at, "active": True}
    if not await insert_ignore(ctx.session, WeComRelation, values, ["customer_id", "staff_userid"]):
        mine = await ctx.session.get(WeComRelation, (customer_id, new))
        if mine is not None and not mine.active:
            mine.active, mine.removed_at, mine.added_at = True, None, at
            mine.channel_code = mine.channel_code or channel
    await ctx.session.execute(
        update(Touch).where(Touch.customer_id == customer_id, Touch.staff_userid == old).values(staff_userid=new)
    )
    if code_owner == old:
        await _move_invite_code(ctx, customer_id, new)


async def _code_owner(ctx: Context, customer_id: int) -> str | None:
    """The member who owns the customer's invite code (the oldest relationship, as referral chose it)."""
    owner: str | None = await ctx.session.scalar(
        select(WeComRelation.staff_userid)
        .where(WeComRelation.customer_id == customer_id, WeComRelation.active.is_(True))
        .order_by(WeComRelation.added_at)
        .limit(1)
    )
    return owner


async def _move_invite_code(ctx: Context, customer_id: int, new: str) -> None:
    code = await ctx.session.get(ReferralCode, customer_id)
    if code is None or code.platform != "wecom_friend" or not code.remote_id:
        return
    body = {"config_id": code.remote_id, "user": [new]}
    ctx.call_platform("wecom", "externalcontact/update_contact_way", body, key=f"referral_owner:{customer_id}:{new}")


async def end_relation(ctx: Context, customer_id: int, old: str, at: datetime) -> None:
    """离职继承 refused or over the successor's cap: the departed member's relationship is gone for good."""
    rel = await ctx.session.get(WeComRelation, (customer_id, old))
    if rel is not None and rel.active:
        rel.active, rel.removed_at = False, at
