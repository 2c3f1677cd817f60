"""Every domain event becomes one delivery row per subscribed, enabled endpoint — in the transaction that
emitted it. A change that rolls back leaves no delivery; a committed one cannot lose its delivery to a
crash (the row is committed with it, and the worker sends what is committed)."""

from __future__ import annotations

from sqlalchemy import select

from bot.context import Context
from bot.dispatcher import Router
from bot.events import DomainEvent
from handlers.integrations.catalogue import body_of, customer_of, event_data, matches
from handlers.integrations.delivery import WEBHOOK_WORKER
from handlers.integrations.tables import WebhookDelivery, WebhookEndpoint

router = Router("webhooks")


@router.on(DomainEvent)
async def queue_deliveries(event: DomainEvent, ctx: Context) -> None:
    endpoints = (
        await ctx.session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events, WebhookEndpoint.ordered).where(WebhookEndpoint.enabled)
        )
    ).all()
    wanted = [(eid, ordered) for eid, events, ordered in endpoints if matches(list(events or ()), event.name)]
    if not wanted:
        return
    now = ctx.now()
    body = body_of(event, now, await event_data(event, ctx.session))
    customer = customer_of(event)
    for endpoint_id, ordered in wanted:
        ctx.session.add(
            WebhookDelivery(
                endpoint_id=endpoint_id, event_type=event.name, customer_id=customer, ordered=ordered, body=body,
                state="pending", attempts=0, created_at=now, next_attempt_at=now,
            )
        )  # fmt: skip
    worker = ctx.services.parts.get(WEBHOOK_WORKER) if ctx.services is not None else None
    if worker is not None:
        ctx.after_commit(worker.wake)
