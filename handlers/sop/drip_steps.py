"""Running one due drip step (called by :class:`handlers.sop.drip_worker.DripWorker` inside the row's transaction).

Order: the enrolment must still be active → a step later than ``budget.missed_after`` is ``missed``
(never sent) → the contact budget (:func:`handlers.sop.budget.decide`) may defer or skip it → the delivery
queues exactly one outbox row (key ``global:drip:<step id>``) or explains why it cannot. Every
outcome leaves a ledger row with its reason; the last step settled completes the enrolment.

Deliveries:

* ``mp_custom`` — ``message/custom/send``
  (docs/platform.md#customer-service-messages), only with a slot of an open window
  (:mod:`handlers.sop.mp_windows`), the window's end as the outbox deadline; never sent to fail with 45015.
  Outside every window nothing we do can open one: only the customer writing can. The step then
  *waits* — stays pending, re-checked every :data:`WINDOW_RECHECK` — while it is within
  ``budget.missed_after`` of its due time, and is then skipped with "outside the customer-service
  window". One message per step: link and mini-program attachments become ``<a>`` links in the text.
* ``wecom_task_single`` — ``externalcontact/add_msg_template`` with ``chat_type: single``
  (docs/platform.md#group-send-tasks), sender =
  the staff member the customer most recently added (still a friend); the staff confirms in the client.
  The task's ``msgid`` is kept in the outbox row's ``result`` (``drip_steps.outbox_id`` points to it).
* ``app_to_owner`` — ``message/send`` app text to that staff member with the content, to send by hand.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from bot.content import choose_variant, local_time_of, render
from bot.content.render import Rendered
from bot.context import Context
from bot.db.models import Customer, OutboxCall
from handlers.growth.content import channels_of
from handlers.growth.synced import MEDIA, all_remote_ids
from handlers.sop.budget import decide, lock_subject, record
from handlers.sop.content import sop_of
from handlers.sop.content.model import Delivery, DripStep
from handlers.sop.drip_enrol import active_staff, complete_if_done
from handlers.sop.events import DripStepSent
from handlers.sop.mp_windows import take_slot
from handlers.sop.tables import DripEnrolment, DripStepRun

WINDOW_RECHECK = timedelta(minutes=5)
APP_TEXT_MAX_BYTES = 2048  # message/send text limit (simulator: 45002)
Settled = Literal["sent", "skipped", "missed", "cancelled"]
Outcome = Literal["sent", "deferred", "skipped"]


async def run_step(step: DripStepRun, ctx: Context) -> None:
    enrolment = await ctx.session.get(DripEnrolment, step.enrolment_id)
    if enrolment is None or enrolment.state != "active":
        await _settle(ctx, step, "cancelled", "enrolment no longer active")
        return
    drip = sop_of(ctx.content).drip(step.drip_id)
    spec = next((s for s in drip.steps if s.id == step.step_id), None) if drip is not None else None
    customer = await ctx.session.get(Customer, step.customer_id)
    if spec is None or customer is None:
        await _settle(ctx, step, "skipped", "step no longer in the content")
    else:
        await _run(ctx, step, spec, customer)
    if step.state != "pending":
        await complete_if_done(ctx, enrolment)


async def _run(ctx: Context, step: DripStepRun, spec: DripStep, customer: Customer) -> None:
    budget, now = sop_of(ctx.content).budget, ctx.now()
    late = now - step.due_at
    if late > budget.missed_after:
        await _settle(ctx, step, "missed", f"missed: due {late} ago, more than {budget.missed_after}", spec)
        return
    await lock_subject(ctx.session, customer_id=customer.id)
    decision = await decide(
        ctx.session, customer_id=customer.id, category=spec.category, delivery=spec.delivery, at=now,
        budget=budget, tz=ctx.settings.tz,
    )  # fmt: skip
    if decision.outcome == "skip":
        await _settle(ctx, step, "skipped", decision.reason, spec)
    elif decision.outcome == "defer" and decision.defer_until is not None:
        step.due_at, step.reason = decision.defer_until, f"deferred: {decision.reason}"
        await _ledger(ctx, step, spec, "deferred", f"{decision.reason}; until {decision.defer_until.isoformat()}")
    else:
        await _deliver(ctx, step, spec, customer)


async def _settle(
    ctx: Context, step: DripStepRun, state: Settled, reason: str | None, spec: DripStep | None = None
) -> None:
    step.state, step.reason, step.finished_at = state, reason, ctx.now()
    if spec is not None:
        await _ledger(ctx, step, spec, "sent" if state == "sent" else "skipped", reason)


async def _ledger(ctx: Context, step: DripStepRun, spec: DripStep, outcome: Outcome, reason: str | None) -> None:
    await record(
        ctx.session, customer_id=step.customer_id, at=ctx.now(), category=spec.category, delivery=spec.delivery,
        source=f"drip:{step.drip_id}/{step.step_id}", outcome=outcome, reason=reason,
    )  # fmt: skip


async def _deliver(ctx: Context, step: DripStepRun, spec: DripStep, customer: Customer) -> None:
    rendered = await _render(ctx, spec, customer)
    if rendered is None:
        await _settle(ctx, step, "skipped", f"message {spec.message!r} is not in the content", spec)
        return
    if spec.delivery is Delivery.MP_CUSTOM:
        call = await _mp_custom(ctx, step, spec, customer, rendered)
    elif spec.delivery is Delivery.WECOM_TASK_SINGLE:
        call = await _wecom_task(ctx, step, spec, customer, rendered)
    elif spec.delivery is Delivery.APP_TO_OWNER:
        call = await _app_to_owner(ctx, step, spec, customer, rendered)
    else:
        await _settle(ctx, step, "skipped", f"delivery {spec.delivery.value} is not for drips", spec)
        return
    if call is not None:
        await ctx.session.flush()
        step.outbox_id = call.id
        missing = ", ".join(rendered.missing_media)
        note = f"; without attachments not uploaded yet: {missing}" if missing else ""
        step.state, step.finished_at, step.reason = "sent", ctx.now(), note[2:] or None
        await _ledger(ctx, step, spec, "sent", f"variant {rendered.variant_ref}{note}")
        await ctx.emit(DripStepSent(step.customer_id, step.drip_id, step.step_id, call.id))


async def _render(ctx: Context, spec: DripStep, customer: Customer) -> Rendered | None:
    message = ctx.content.message(spec.message)
    if message is None:
        return None
    variant = choose_variant(message, ctx.rng, local_time_of(ctx.now(), ctx.settings.tz))
    channel = channels_of(ctx.content).channel(customer.first_channel) if customer.first_channel else None
    variables: dict[str, str | None] = {
        "nickname": customer.name, "staff_name": None,
        "channel": channel.code if channel else None, "channel_name": channel.name if channel else None,
    }  # fmt: skip
    media = await all_remote_ids(ctx.session, MEDIA)
    return render(variant, variables, ctx.content.fallbacks, media)


def _with_links(rendered: Rendered) -> str:
    """Text plus one ``<a>`` per link / mini-program attachment (both allowed in OA text messages)."""
    lines = [rendered.text] if rendered.text else []
    for attachment in rendered.attachments:
        if attachment.get("msgtype") == "link":
            link = attachment["link"]
            lines.append(f'<a href="{link["url"]}">{link["title"]}</a>')
        elif attachment.get("msgtype") == "miniprogram":
            mp = attachment["miniprogram"]
            path = mp["page"]
            lines.append(f'<a data-miniprogram-appid="{mp["appid"]}" data-miniprogram-path="{path}">{mp["title"]}</a>')
    return "\n".join(lines)


async def _mp_custom(
    ctx: Context, step: DripStepRun, spec: DripStep, customer: Customer, rendered: Rendered
) -> OutboxCall | None:
    now, budget = ctx.now(), sop_of(ctx.content).budget
    if not customer.openid or not customer.mp_follower:
        await _settle(ctx, step, "skipped", "not following the Official Account", spec)
        return None
    text = _with_links(rendered)
    if not text:
        await _settle(ctx, step, "skipped", "nothing an Official Account text message can carry", spec)
        return None
    slot = await take_slot(ctx.session, customer.openid, now)
    if slot is None:
        await _wait_or_skip(ctx, step, spec, now, now - step.due_at + WINDOW_RECHECK <= budget.missed_after)
        return None
    body = {"touser": customer.openid, "msgtype": "text", "text": {"content": text}}
    return ctx.call_platform("mp", "message/custom/send", body, key=f"global:drip:{step.id}", deadline=slot.closes_at)


async def _wait_or_skip(ctx: Context, step: DripStepRun, spec: DripStep, now: datetime, can_wait: bool) -> None:
    reason = "outside the customer-service window"
    if not can_wait:
        await _settle(ctx, step, "skipped", reason, spec)
        return
    waiting = f"waiting: {reason} (the customer has to write first)"
    if step.reason != waiting:  # one ledger row per wait, not one per re-check
        await _ledger(ctx, step, spec, "deferred", waiting)
    step.reason, step.claimed_until = waiting, now + WINDOW_RECHECK


async def _wecom_task(
    ctx: Context, step: DripStepRun, spec: DripStep, customer: Customer, rendered: Rendered
) -> OutboxCall | None:
    staff = await active_staff(ctx, customer.id)
    if staff is None or not customer.external_userid:
        await _settle(ctx, step, "skipped", "not a WeCom friend of any staff member", spec)
        return None
    body: dict[str, Any] = {"chat_type": "single", "external_userid": [customer.external_userid], "sender": staff}
    if rendered.text:
        body["text"] = {"content": rendered.text}
    if rendered.attachments:
        # docs/platform.md#group-send-tasks
        body["attachments"] = [dict(a) for a in rendered.attachments[:9]]  # ≤ 9 attachments
    return ctx.call_platform("wecom", "externalcontact/add_msg_template", body, key=f"global:drip:{step.id}")


async def _app_to_owner(
    ctx: Context, step: DripStepRun, spec: DripStep, customer: Customer, rendered: Rendered
) -> OutboxCall | None:
    staff = await active_staff(ctx, customer.id)
    if staff is None:
        await _settle(ctx, step, "skipped", "no staff member to hand the message to", spec)
        return None
    who = customer.name or customer.external_userid or customer.openid or str(customer.id)
    text = f"【请一对一发给客户：{who}】\n{_with_links(rendered)}"
    while len(text.encode()) > APP_TEXT_MAX_BYTES:
        text = text[:-16]
    body = {"touser": staff, "msgtype": "text", "agentid": ctx.settings.wecom.agent_id, "text": {"content": text}}
    return ctx.call_platform("wecom", "message/send", body, key=f"global:drip:{step.id}")
