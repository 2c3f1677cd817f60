"""Drips on events: triggers enrol, goals stop, Official Account events open customer-service windows.

Registered after the growth routers, so for the same event the customer, relation, touch and tags
already exist in this transaction. Triggers (``drips.toml`` ``trigger.on``):

* ``friend_added`` — channel filter against the 联系我 ``State``'s channel code;
* ``followed`` — Official Account subscribe, channel = the QR scene's channel (a SCAN is not a follow);
* ``joined_group`` — from the ``groupchat/get`` snapshot that admitted the member (the callback does not
  say which members are customers), channel = the 加入群聊 code; joins older than a day are not
  triggers (the first snapshot of a pre-existing group admits everyone);
* ``tag_added`` — channel tags put on at the arrival, ``then.tags``, and any handler calling
  :func:`handlers.sop.drip_enrol.tag_added`;
* ``order_paid`` — the order webhook's event.

Stops: purchased (OrderPaid), added_wecom_friend (FriendAdded, and again after the profile read links a
WeCom contact to the follower by unionid), unfollowed, deleted_friend (no active relation left; a
transfer is not a loss), replied (any Official Account message), ``tag:``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.content import Platform
from bot.context import Context
from bot.db.models import Customer
from bot.dispatcher import PlatformResult, Router
from bot.events import (
    Followed,
    FriendAdded,
    FriendLost,
    FriendRemovedByStaff,
    MenuClicked,
    MessageReceived,
    Scanned,
    TextReceived,
    Unfollowed,
)
from handlers.customers.identity import ensure_customer, find_customer
from handlers.growth.attribution import Arrival, resolve_channel
from handlers.growth.content import channels_of
from handlers.growth.tables import Touch
from handlers.orders.events import OrderRecorded
from handlers.sop.content import sop_of
from handlers.sop.content.model import StopKind, TriggerKind
from handlers.sop.drip_enrol import enrol, stop_drips, tag_added
from handlers.sop.mp_windows import window_opened, windows_closed

router = Router("drips")

JOIN_FRESHNESS = timedelta(days=1)


def _at(create_time: int) -> datetime:
    return datetime.fromtimestamp(create_time, UTC)


async def _arrived(ctx: Context, customer: Customer, kind: TriggerKind, arrival: Arrival, at: datetime) -> None:
    """Enrol in the drips this arrival starts, then run the channel's tags as ``tag_added`` triggers."""
    for drip in sop_of(ctx.content).drips_for(kind, arrival.code):
        await enrol(ctx, customer, drip, at)
    if arrival.channel is not None:
        for tag in arrival.channel.tags:
            await tag_added(ctx, customer, tag, at)


@router.on(Followed)
async def start_follow_drips(event: Followed, ctx: Context) -> None:
    at = _at(event.create_time)
    await window_opened(ctx.session, event.openid, "event", at, ctx.now())
    customer = await ensure_customer(ctx, "openid", event.openid)
    await _arrived(ctx, customer, TriggerKind.FOLLOWED, resolve_channel(ctx, event.scene, Platform.MP), at)


@router.on(Scanned, MenuClicked)
async def open_event_window(event: Scanned | MenuClicked, ctx: Context) -> None:
    """SCAN and CLICK open the 3-sends-in-1-minute window (docs/platform.md#customer-service-messages, #menu-events)."""
    await window_opened(ctx.session, event.openid, "event", _at(event.create_time), ctx.now())


@router.on(TextReceived, MessageReceived)
async def stop_on_reply(event: TextReceived | MessageReceived, ctx: Context) -> None:
    """The user wrote: the 5-sends-in-48-h window opens, and drips that stop on a reply stop."""
    await window_opened(ctx.session, event.openid, "message", _at(event.create_time), ctx.now())
    customer = await find_customer(ctx, "openid", event.openid)
    if customer is not None:
        await stop_drips(ctx, customer.id, StopKind.REPLIED)


@router.on(Unfollowed)
async def stop_on_unfollow(event: Unfollowed, ctx: Context) -> None:
    await windows_closed(ctx.session, event.openid, ctx.now())
    customer = await find_customer(ctx, "openid", event.openid)
    if customer is not None:
        await stop_drips(ctx, customer.id, StopKind.UNFOLLOWED)


@router.on(FriendAdded)
async def start_friend_drips(event: FriendAdded, ctx: Context) -> None:
    customer = await ensure_customer(ctx, "external_userid", event.external_userid)
    await stop_drips(ctx, customer.id, StopKind.ADDED_WECOM_FRIEND)
    arrival = resolve_channel(ctx, event.state, Platform.WECOM_FRIEND)
    await _arrived(ctx, customer, TriggerKind.FRIEND_ADDED, arrival, _at(event.create_time))


@router.on(FriendLost, FriendRemovedByStaff)
async def stop_on_friend_loss(event: FriendLost | FriendRemovedByStaff, ctx: Context) -> None:
    if isinstance(event, FriendRemovedByStaff) and event.source == "DELETE_BY_TRANSFER":
        return
    customer = await find_customer(ctx, "external_userid", event.external_userid)
    if customer is not None and not customer.wecom_friend:  # the friends router updated it just before
        await stop_drips(ctx, customer.id, StopKind.DELETED_FRIEND)


@router.on(OrderRecorded)
async def stop_on_purchase(event: OrderRecorded, ctx: Context) -> None:
    """A paid order reaches the goal (stops ``purchased`` drips) and starts ``order_paid`` drips."""
    customer = await ctx.session.get(Customer, event.customer_id)
    if customer is None:
        return
    await stop_drips(ctx, customer.id, StopKind.PURCHASED)
    for drip in sop_of(ctx.content).drips_for(TriggerKind.ORDER_PAID):
        await enrol(ctx, customer, drip, event.paid_at)


@router.on_result("wecom_profile")
async def stop_after_wecom_link(result: PlatformResult, ctx: Context) -> None:
    """The profile read may merge this WeCom contact into the follower (unionid): the OA drip stops."""
    contact = result.response.get("external_contact")
    if isinstance(contact, dict) and contact.get("external_userid"):
        customer = await find_customer(ctx, "external_userid", str(contact["external_userid"]))
        if customer is not None and customer.wecom_friend:
            await stop_drips(ctx, customer.id, StopKind.ADDED_WECOM_FRIEND)


@router.on_result("mp_profile")
async def stop_after_mp_link(result: PlatformResult, ctx: Context) -> None:
    openid = result.response.get("openid")
    if isinstance(openid, str):
        customer = await find_customer(ctx, "openid", openid)
        if customer is not None and customer.wecom_friend:
            await stop_drips(ctx, customer.id, StopKind.ADDED_WECOM_FRIEND)


@router.on_result("group_snapshot")
async def start_join_drips(result: PlatformResult, ctx: Context) -> None:
    """Members this snapshot admitted (their ``group_joined`` touch carries this call's receipt)."""
    chat = result.response.get("group_chat")
    if not isinstance(chat, dict) or not chat.get("chat_id") or ctx.receipt_id is None:
        return
    touches = await ctx.session.scalars(
        select(Touch).where(
            Touch.chat_id == str(chat["chat_id"]), Touch.action == "group_joined",
            Touch.receipt_id == ctx.receipt_id, Touch.occurred_at >= ctx.now() - JOIN_FRESHNESS,
        )
    )  # fmt: skip
    for touch in touches.all():
        customer = await ctx.session.get(Customer, touch.customer_id)
        if customer is None:
            continue
        channel = channels_of(ctx.content).channel(touch.channel_code) if touch.channel_code else None
        arrival = Arrival(channel, channel is not None)
        await _arrived(ctx, customer, TriggerKind.JOINED_GROUP, arrival, touch.occurred_at)
