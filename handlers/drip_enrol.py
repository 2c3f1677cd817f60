"""Drip enrolment, stopping and completion — the functions every handler (and the step worker) shares.

* :func:`enrol` — one :class:`DripEnrolment` per (customer, drip) (``INSERT … ON CONFLICT DO NOTHING``:
  a duplicate or replayed trigger never enrols twice, a finished drip never restarts) and one
  :class:`DripStepRun` per step, due at the step's delay from the trigger time, in the configured
  timezone (``next_day 10:00`` is 10:00 Asia/Shanghai by default). A customer who already meets a
  stop condition (bought before, already a WeCom friend, already has the stop tag) is recorded as
  ``stopped`` with ``already …`` and gets no steps.
* :func:`stop_drips` — a stop condition happened: active enrolments whose drip lists it are stopped and
  their pending steps cancelled with the reason, in the caller's transaction.
* :func:`tag_added` — **the hook for tags**: any handler that puts a tag on a customer calls it in the
  same transaction; it starts ``tag_added`` drips and stops drips with ``tag:<group/name>``.
* :func:`complete_if_done` — after the last step (sent, skipped or missed): ``then.tags`` (locally and on
  the platforms, like attribution does) and ``then.start``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from bot.content import Drip, StopKind, TriggerKind
from bot.content.sop_model import StopCondition
from bot.context import Context
from bot.db.growth import CustomerTag, WeComRelation
from bot.db.models import Customer
from bot.db.sop import DripEnrolment, DripStepRun
from bot.db.synced import MP_TAG, WECOM_TAG, remote_ids
from bot.db.upsert import insert_ignore


async def enrol(ctx: Context, customer: Customer, drip: Drip, anchor: datetime) -> bool:
    """Start ``drip`` for ``customer`` counted from ``anchor``; False when already enrolled (ever)."""
    already = await _already_met(ctx, customer, drip)
    values = {
        "customer_id": customer.id, "drip_id": drip.id, "anchor_at": anchor, "state": "active",
        "receipt_id": ctx.receipt_id,
    }  # fmt: skip
    if already is not None:
        values.update(state="stopped", stop_reason=f"already {already}"[:64], ended_at=ctx.now())
    if not await insert_ignore(ctx.session, DripEnrolment, values, ["customer_id", "drip_id"]):
        return False
    enrolment = await ctx.session.scalar(
        select(DripEnrolment).where(DripEnrolment.customer_id == customer.id, DripEnrolment.drip_id == drip.id)
    )
    assert enrolment is not None
    if already is not None:
        return True
    tz = ctx.settings.tz
    for step in drip.steps:
        ctx.session.add(
            DripStepRun(
                enrolment_id=enrolment.id, customer_id=customer.id, drip_id=drip.id, step_id=step.id,
                due_at=step.delay.due_after(anchor, tz), state="pending",
            )
        )  # fmt: skip
    if not drip.steps:
        await complete_if_done(ctx, enrolment)
    return True


async def _already_met(ctx: Context, customer: Customer, drip: Drip) -> str | None:
    """A stop condition that already holds (never the one the trigger itself makes true)."""
    for cond in drip.stop_when:
        if cond.kind is StopKind.PURCHASED and drip.trigger.kind is not TriggerKind.ORDER_PAID:
            if customer.purchase_count > 0:
                return str(cond)
        elif cond.kind is StopKind.ADDED_WECOM_FRIEND and drip.trigger.kind is not TriggerKind.FRIEND_ADDED:
            if customer.wecom_friend:
                return str(cond)
        elif cond.kind is StopKind.TAG and cond.tag is not None and await has_tag(ctx, customer.id, cond.tag):
            return str(cond)
    return None


async def has_tag(ctx: Context, customer_id: int, tag: str) -> bool:
    found = await ctx.session.scalar(
        select(CustomerTag.tag).where(CustomerTag.customer_id == customer_id, CustomerTag.tag == tag)
    )
    return found is not None


async def stop_drips(ctx: Context, customer_id: int, kind: StopKind, tag: str | None = None) -> list[str]:
    """Stop the customer's active drips that list this condition; returns the stopped drip ids."""
    active = await ctx.session.scalars(
        select(DripEnrolment).where(DripEnrolment.customer_id == customer_id, DripEnrolment.state == "active")
    )
    stopped = []
    for enrolment in active.all():
        drip = ctx.content.drip(enrolment.drip_id)
        if drip is None or not any(c.kind is kind and (tag is None or c.tag == tag) for c in drip.stop_when):
            continue
        reason = str(StopCondition(kind, tag))
        enrolment.state, enrolment.stop_reason, enrolment.ended_at = "stopped", reason[:64], ctx.now()
        await ctx.session.execute(
            update(DripStepRun)
            .where(DripStepRun.enrolment_id == enrolment.id, DripStepRun.state == "pending")
            .values(state="cancelled", reason=f"drip stopped: {reason}", finished_at=ctx.now())
            .execution_options(synchronize_session=False)
        )
        stopped.append(enrolment.drip_id)
    return stopped


async def tag_added(ctx: Context, customer: Customer, tag: str, at: datetime) -> None:
    """A tag (``group/name``) was put on ``customer``: start tag-triggered drips, stop ``tag:`` drips."""
    await stop_drips(ctx, customer.id, StopKind.TAG, tag)
    for drip in ctx.content.drips_for(TriggerKind.TAG_ADDED, tag=tag):
        await enrol(ctx, customer, drip, at)


async def complete_if_done(ctx: Context, enrolment: DripEnrolment) -> bool:
    """Finish an active enrolment with no pending step left: ``then.tags`` and ``then.start``."""
    pending = await ctx.session.scalar(
        select(func.count())
        .select_from(DripStepRun)
        .where(DripStepRun.enrolment_id == enrolment.id, DripStepRun.state == "pending")
    )
    if pending or enrolment.state != "active":
        return False
    enrolment.state, enrolment.ended_at = "completed", ctx.now()
    drip = ctx.content.drip(enrolment.drip_id)
    customer = await ctx.session.get(Customer, enrolment.customer_id)
    if drip is None or customer is None:
        return True
    await _then_tags(ctx, customer, drip, enrolment.id)
    following = ctx.content.drip(drip.then_start) if drip.then_start else None
    if following is not None and following.enabled:
        await enrol(ctx, customer, following, ctx.now())
    return True


async def _then_tags(ctx: Context, customer: Customer, drip: Drip, enrolment_id: int) -> None:
    for tag in drip.then_tags:
        values = {"customer_id": customer.id, "tag": tag, "source": f"drip:{drip.id}"[:32], "created_at": ctx.now()}
        await insert_ignore(ctx.session, CustomerTag, values, ["customer_id", "tag"])
    await _mark_on_platforms(ctx, customer, list(drip.then_tags), f"global:drip_tags:{enrolment_id}")
    for tag in drip.then_tags:
        await tag_added(ctx, customer, tag, ctx.now())


async def _mark_on_platforms(ctx: Context, customer: Customer, tags: list[str], key: str) -> None:
    """Corp tags through the customer's staff member (§6) and Official Account tags (``batchtagging``).

    Keys are global per enrolment: the step worker has no receipt to scope them by."""
    staff = await active_staff(ctx, customer.id)
    wecom = await remote_ids(ctx.session, WECOM_TAG, tags)
    if wecom and staff is not None and customer.external_userid:
        body = {"userid": staff, "external_userid": customer.external_userid, "add_tag": list(wecom.values())}
        ctx.call_platform("wecom", "externalcontact/mark_tag", body, key=f"{key}:wecom")
    if customer.openid and customer.mp_follower:
        for tag, tag_id in (await remote_ids(ctx.session, MP_TAG, tags)).items():
            body_mp = {"openid_list": [customer.openid], "tagid": int(tag_id)}
            ctx.call_platform("mp", "tags/members/batchtagging", body_mp, key=f"{key}:mp:{tag_id}:{tag}"[:120])


async def active_staff(ctx: Context, customer_id: int) -> str | None:
    """The staff member the customer added most recently and still has (group sends go to them, §7.1)."""
    staff: str | None = await ctx.session.scalar(
        select(WeComRelation.staff_userid)
        .where(WeComRelation.customer_id == customer_id, WeComRelation.active)
        .order_by(WeComRelation.added_at.desc(), WeComRelation.staff_userid)
        .limit(1)
    )
    return staff
