"""客户流失提醒: a customer deleted a member (``del_follow_user``) → tell that member.

Listens to growth's :class:`~handlers.growth.events.CustomerLost` (kind ``customer_deleted_staff``); the
member is the one on growth's ``losses`` row of the same receipt. The rule is ``[loss_alerts]`` in
``content/staff.toml`` (:mod:`handlers.staff.content`): an app message to the member (``message/send``
through the agent, docs/platform.md#app-messages) and/or the brand's group robot, never inside quiet
hours (held to their end), or one daily digest per member at ``digest_at``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.content.templates import fill
from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from bot.dispatcher import Router
from bot.periodic import Job
from handlers.growth.events import CustomerLost
from handlers.growth.tables import Loss
from handlers.sop.budget import quiet_until
from handlers.sop.group_sop_robots import ROBOT_API, ROBOT_PLATFORM
from handlers.staff.content import LOSS_ALERTS, TEXT_FALLBACKS, TEXT_VARIABLES, LossAlerts
from handlers.staff.tables import LossAlert

router = Router("staff_alerts")
DIGEST_SECONDS = 300.0


def _rules(ctx: Context) -> LossAlerts | None:
    rules = ctx.content.one(LOSS_ALERTS)
    return rules if rules is not None and rules.enabled else None


@router.on(CustomerLost)
async def customer_deleted_member(event: CustomerLost, ctx: Context) -> None:
    rules = _rules(ctx)
    if rules is None or event.kind != "customer_deleted_staff":
        return
    staff = await ctx.session.scalar(
        select(Loss.staff_userid).where(Loss.receipt_id == ctx.receipt_id, Loss.customer_id == event.customer_id)
    )
    if not staff:
        return
    values = {"staff_userid": staff, "customer_id": event.customer_id, "receipt_id": ctx.receipt_id,
              "lost_at": event.at, "state": "pending"}  # fmt: skip
    if not await insert_ignore(ctx.session, LossAlert, values, ["receipt_id"]) or rules.digest:
        return  # a re-run (already recorded), or left for the daily digest
    alert = (await ctx.session.scalars(select(LossAlert).where(LossAlert.receipt_id == ctx.receipt_id))).one()
    customer = await ctx.session.get(Customer, event.customer_id)
    names = {"customer": _who(customer), "channel": event.channel, "staff": staff, "count": "1"}
    text = fill(rules.text, names, TEXT_FALLBACKS, TEXT_VARIABLES)
    alert.outbox_id = await _send(ctx, rules, staff, text, f"loss_alert:{alert.id}")
    alert.state = "queued"


def _who(customer: Customer | None) -> str | None:
    if customer is None:
        return None
    return customer.name or customer.external_userid


async def _send(ctx: Context, rules: LossAlerts, staff: str, text: str, key: str) -> int | None:
    """Queue the alert on every configured way, not before the end of quiet hours; the app call's id."""
    later = quiet_until(ctx.now(), rules.quiet_hours, ctx.settings.tz)
    first: int | None = None
    if "app" in rules.via:
        body = {"touser": staff, "msgtype": "text", "agentid": ctx.settings.wecom.agent_id, "text": {"content": text}}
        call = ctx.call_platform("wecom", "message/send", body, key=f"global:{key}", not_before=later)
        await ctx.session.flush()
        first = call.id
    if "robot" in rules.via and rules.robot_chat_id:
        body2: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
        ctx.call_platform(ROBOT_PLATFORM, ROBOT_API, body2, key=f"global:{key}:robot", not_before=later,
                          params={"chat_id": rules.robot_chat_id})  # fmt: skip
    return first


async def send_digests(ctx: Context) -> int:
    """Once a day at ``digest_at`` (local): one message per member listing the losses recorded before it."""
    rules = _rules(ctx)
    if rules is None or not rules.digest:
        return 0
    local = ctx.now().astimezone(ctx.settings.tz)
    cutoff = datetime.combine(local.date(), rules.digest_at, tzinfo=ctx.settings.tz)
    if local < cutoff or quiet_until(ctx.now(), rules.quiet_hours, ctx.settings.tz) is not None:
        return 0
    pending = await ctx.session.scalars(
        select(LossAlert).where(LossAlert.state == "pending", LossAlert.lost_at < cutoff).order_by(LossAlert.id)
    )
    by_staff: dict[str, list[LossAlert]] = defaultdict(list)
    for alert in pending.all():
        by_staff[alert.staff_userid].append(alert)
    for staff, alerts in sorted(by_staff.items()):
        customers = [_who(await ctx.session.get(Customer, a.customer_id)) or "?" for a in alerts]
        names = {"customer": "、".join(customers[:20]), "channel": None, "staff": staff, "count": str(len(alerts))}
        text = fill(rules.text, names, TEXT_FALLBACKS, TEXT_VARIABLES)
        outbox_id = await _send(
            ctx, rules, staff, f"今日流失 {len(alerts)} 位客户：{text}", f"loss_digest:{alerts[0].id}"
        )
        for alert in alerts:
            alert.state, alert.outbox_id = "queued", outbox_id
    return len(by_staff)


DIGEST = Job("staff_loss_digest", DIGEST_SECONDS, send_digests)
