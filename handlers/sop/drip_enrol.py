"""Drip enrolment, stopping and completion — the functions every handler (and the step worker) shares.

* :func:`enrol` — one :class:`DripEnrolment` per (customer, drip) (``INSERT … ON CONFLICT DO NOTHING``:
  a duplicate or replayed trigger never enrols twice, a finished drip never restarts) and one
  :class:`DripStepRun` per step, due at the step's delay from the trigger time, in the configured
  timezone (``next_day 10:00`` is 10:00 Asia/Shanghai by default). A customer who already meets a
  stop condition (bought before, already a WeCom friend, already has the stop tag) is recorded as
  ``stopped`` with ``already …`` and gets no steps. Set-based, no ORM objects: one INSERT per
  enrolment, the steps of all the transaction's enrolments in one ``executemany``. When a step is due at
  once it asks the transaction's runner to wake (:meth:`bot.context.Context.after_commit`) the
  drip worker after the commit.
* :func:`stop_drips` — a stop condition happened: active enrolments whose drip lists it are stopped and
  their pending steps cancelled with the reason, in the caller's transaction.
* :func:`tag_added` — **the hook for tags**: any handler that puts a tag on a customer calls it in the
  same transaction; it starts ``tag_added`` drips and stops drips with ``tag:<group/name>``.
* :func:`complete_if_done` — after the last step (sent, skipped or missed): ``then.tags`` (locally and on
  the platforms, like attribution does) and ``then.start``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.context import Context
from bot.db.deferred import defer_insert
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from handlers.growth.synced import MP_TAG, WECOM_TAG, remote_ids
from handlers.growth.tables import CustomerTag, WeComRelation
from handlers.sop.content import sop_of
from handlers.sop.content.model import Drip, StopCondition, StopKind, TriggerKind
from handlers.sop.drip_worker import wake_drips_after_commit
from handlers.sop.events import DripStopped
from handlers.sop.tables import DripEnrolment, DripStepRun


async def enrol(ctx: Context, customer: Customer, drip: Drip, anchor: datetime) -> bool:
    """Start ``drip`` for ``customer`` counted from ``anchor``; False when already enrolled (ever).

    Set-based, no ORM objects: one ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` (compiled once; no row
    back = enrolled before) straight on the transaction's connection, and the steps handed to
    :func:`bot.db.deferred.defer_insert` — one ``executemany`` for all the enrolments of the transaction,
    written before its next query or its commit. Step times are computed once per step from ``anchor``."""
    already = await _already_met(ctx, customer, drip)
    values: dict[str, Any] = {
        "customer_id": customer.id, "drip_id": drip.id, "anchor_at": anchor, "state": "active",
        "stop_reason": None, "ended_at": None, "receipt_id": ctx.receipt_id,
    }  # fmt: skip
    if already is not None:
        values.update(state="stopped", stop_reason=f"already {already}"[:64], ended_at=ctx.now())
    # On the connection, not the Session: no autoflush of the steps held for earlier enrolments (nothing here
    # depends on them; the customer row exists — handlers get it from ensure_customer/find_customer).
    conn = await ctx.session.connection()
    insert_enrolment = _PG_ENROL if conn.dialect.name == "postgresql" else _SQLITE_ENROL
    enrolment_id: int | None = (await conn.execute(insert_enrolment, values)).scalar()
    if enrolment_id is None:
        return False
    if already is not None:
        return True
    if not drip.steps:
        enrolment = await ctx.session.get(DripEnrolment, enrolment_id)
        assert enrolment is not None
        await complete_if_done(ctx, enrolment)
        return True
    due = [step.delay.due_after(anchor, ctx.settings.tz) for step in drip.steps]
    steps = [
        {"enrolment_id": enrolment_id, "customer_id": customer.id, "drip_id": drip.id, "step_id": step.id,
         "due_at": when, "state": "pending"}
        for step, when in zip(drip.steps, due, strict=True)
    ]  # fmt: skip
    defer_insert(ctx.session, _STEPS, steps)
    if min(due) <= ctx.now():
        wake_drips_after_commit(ctx)
    return True


def _insert_enrolment(insert_: Any) -> Any:
    """``INSERT INTO drip_enrolments … ON CONFLICT (customer_id, drip_id) DO NOTHING RETURNING id`` with the
    values as named parameters: compiled once, executed with each enrolment's dict."""
    return (
        insert_(_ENROLMENTS)
        .values({c: bindparam(c, type_=_ENROLMENTS.c[c].type) for c in _ENROLMENT_COLUMNS})
        .on_conflict_do_nothing(index_elements=["customer_id", "drip_id"])
        .returning(_ENROLMENTS.c.id)
    )


_ENROLMENTS: Table = DripEnrolment.__table__  # type: ignore[assignment]
_STEPS: Table = DripStepRun.__table__  # type: ignore[assignment]
_ENROLMENT_COLUMNS = ("customer_id", "drip_id", "anchor_at", "state", "stop_reason", "ended_at", "receipt_id")
_SQLITE_ENROL = _insert_enrolment(sqlite_insert)
_PG_ENROL = _insert_enrolment(pg_insert)


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
        drip = sop_of(ctx.content).drip(enrolment.drip_id)
        if drip is None or not any(c.kind is kind and (tag is None or c.tag == tag) for c in drip.stop_when):
            continue
        await stop_enrolment(ctx, enrolment, str(StopCondition(kind, tag)))
        stopped.append(enrolment.drip_id)
    return stopped


async def stop_enrolment(ctx: Context, enrolment: DripEnrolment, reason: str) -> None:
    """Stop one active enrolment now: its pending steps are cancelled with ``reason`` (an operator's stop
    through the admin API, or a stop condition)."""
    enrolment.state, enrolment.stop_reason, enrolment.ended_at = "stopped", reason[:64], ctx.now()
    await ctx.session.execute(
        update(DripStepRun)
        .where(DripStepRun.enrolment_id == enrolment.id, DripStepRun.state == "pending")
        .values(state="cancelled", reason=f"drip stopped: {reason}", finished_at=ctx.now())
        .execution_options(synchronize_session=False)
    )
    await ctx.emit(DripStopped(enrolment.customer_id, enrolment.drip_id, reason))


async def tag_added(ctx: Context, customer: Customer, tag: str, at: datetime) -> None:
    """A tag (``group/name``) was put on ``customer``: start tag-triggered drips, stop ``tag:`` drips."""
    await stop_drips(ctx, customer.id, StopKind.TAG, tag)
    for drip in sop_of(ctx.content).drips_for(TriggerKind.TAG_ADDED, tag=tag):
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
    drip = sop_of(ctx.content).drip(enrolment.drip_id)
    customer = await ctx.session.get(Customer, enrolment.customer_id)
    if drip is None or customer is None:
        return True
    await _then_tags(ctx, customer, drip, enrolment.id)
    following = sop_of(ctx.content).drip(drip.then_start) if drip.then_start else None
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
    """Corp tags through the customer's staff member
    (docs/platform.md#corp-tags) and Official Account tags (``batchtagging``).

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
    """The staff member the customer added most recently and still has (group sends go to them,
    docs/platform.md#group-send-tasks)."""
    staff: str | None = await ctx.session.scalar(
        select(WeComRelation.staff_userid)
        .where(WeComRelation.customer_id == customer_id, WeComRelation.active)
        .order_by(WeComRelation.added_at.desc(), WeComRelation.staff_userid)
        .limit(1)
    )
    return staff
