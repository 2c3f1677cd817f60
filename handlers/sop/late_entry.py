"""Drips for what ``siyu-bot reconcile`` found late (handlers/growth/reconcile.py).

An arrival found late (:class:`~handlers.growth.events.ArrivalDiscovered`) was never welcomed; it enters
only the drips that allow it (``late_entry = true``), counted from its discovery, and its channel's tags
start the ``tag_added`` drips that allow it. A loss found late stops drips as its callback would have.
"""

from __future__ import annotations

from bot.context import Context
from bot.db.models import Customer
from bot.dispatcher import Router
from handlers.growth.content import channels_of
from handlers.growth.events import ArrivalDiscovered, CustomerLost
from handlers.growth.friends import FRIEND_GONE
from handlers.sop.content import sop_of
from handlers.sop.content.model import StopKind, TriggerKind
from handlers.sop.drip_enrol import enrol, stop_drips

router = Router("late_entry")

_TRIGGERS = {
    "wecom_friend": TriggerKind.FRIEND_ADDED,
    "mp": TriggerKind.FOLLOWED,
    "wecom_group": TriggerKind.JOINED_GROUP,
}


@router.on(ArrivalDiscovered)
async def enrol_late_arrival(event: ArrivalDiscovered, ctx: Context) -> None:
    customer = await ctx.session.get(Customer, event.customer_id)
    kind = _TRIGGERS.get(event.platform)
    if customer is None or kind is None:
        return
    if kind is TriggerKind.FRIEND_ADDED:
        await stop_drips(ctx, customer.id, StopKind.ADDED_WECOM_FRIEND)
    drips = [d for d in sop_of(ctx.content).drips_for(kind, event.channel) if d.late_entry]
    channel = channels_of(ctx.content).channel(event.channel) if event.channel else None
    for tag in channel.tags if channel is not None else ():
        drips += [d for d in sop_of(ctx.content).drips_for(TriggerKind.TAG_ADDED, tag=tag) if d.late_entry]
    for drip in drips:
        await enrol(ctx, customer, drip, event.at)


@router.on(CustomerLost)
async def stop_on_late_loss(event: CustomerLost, ctx: Context) -> None:
    """A lost friend (``friend_gone``, only reconcile records it) or an unfollow stops drips as the
    callback does (for an unfollow callback its own handler has stopped them already: nothing left)."""
    if event.kind == "unfollowed":
        await stop_drips(ctx, event.customer_id, StopKind.UNFOLLOWED)
    elif event.kind == FRIEND_GONE:
        customer = await ctx.session.get(Customer, event.customer_id)
        if customer is not None and not customer.wecom_friend:
            await stop_drips(ctx, customer.id, StopKind.DELETED_FRIEND)
