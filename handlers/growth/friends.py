"""New WeCom friends: attribute, welcome inside the 20-second welcome_code window, tag, learn the profile.

The welcome depends only on content, so it is decided at the door (bot/door.py): :func:`welcome_at_the_door`
queues it with the receipt, in the receipt's transaction, and the outbox sends it right after that commit —
it never waits behind the handler backlog of a burst of new friends. The handler then records the
``Welcome`` row pointing at that call (found by its key ``welcome:<code>``). When the door queued nothing
(an event stored before door actions existed, attachments this process does not know as uploaded yet) the
handler queues the welcome first, with priority 0 and a deadline of ``CreateTime + 20 s``, as before; tags
and the profile fetch follow. The profile is read after the welcome, so ``{nickname}`` is the neutral
fallback at the door — for a returning customer too (docs/content.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.content import Platform, choose_variant, local_time_of, render
from bot.context import PRIORITY_DEFAULT, PRIORITY_WELCOME, Context
from bot.db.models import Customer, OutboxCall
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.door import NOTE, Door, DoorCall
from bot.events import FriendAdded, FriendLost, FriendRemovedByStaff
from handlers.customers.identity import ensure_customer, find_customer, link_unionid
from handlers.growth.attribution import (
    Arrival,
    arrival_for,
    mark_wecom_tags,
    record_touch,
    resolve_channel,
    tag_locally,
)
from handlers.growth.content import channels_of
from handlers.growth.events import CustomerLost
from handlers.growth.synced import MEDIA, MEDIA_IDS, all_remote_ids
from handlers.growth.tables import Loss, WeComRelation, Welcome

FRIEND_GONE = "friend_gone"  # a loss found by ``siyu-bot reconcile`` (handlers/growth/reconcile.py)

router = Router("friends")

# docs/platform.md#welcome-messages
WELCOME_WINDOW = timedelta(seconds=20)  # send_welcome_msg: within 20 s of the event, once


def welcome_key(welcome_code: str) -> str:
    """The outbox key of a welcome: global, so a welcome_code is queued once whoever queues it."""
    return f"welcome:{welcome_code}"


@router.door(FriendAdded)
def welcome_at_the_door(event: FriendAdded, door: Door) -> list[DoorCall]:
    """The welcome from content alone, queued with the receipt. Nothing when there is no welcome_code, it
    is past its 20 s already, the channel has no welcome, or an attachment's file is not in this process's
    media snapshot (the handler then decides with the database, as before door actions)."""
    if not event.welcome_code:
        return []
    deadline = datetime.fromtimestamp(event.create_time, UTC) + WELCOME_WINDOW
    if door.now > deadline:
        return []
    arrival = arrival_for(door.content, event.state, Platform.WECOM_FRIEND)
    message = channels_of(door.content).welcome_for(arrival.channel) if arrival.channel is not None else None
    if message is None:
        return []
    variant = choose_variant(message, door.rng(event), door.local_time(event))
    snapshot = door.parts.get(MEDIA_IDS)
    media = snapshot.ids if snapshot is not None else {}
    rendered = render(variant, _variables(None, arrival), door.content.fallbacks, media)
    if rendered.missing_media:
        return []
    return [
        DoorCall(
            "wecom", "externalcontact/send_welcome_msg", rendered.welcome_body(event.welcome_code),
            key=welcome_key(event.welcome_code), priority=PRIORITY_WELCOME, deadline=deadline,
            note={"variant_ref": rendered.variant_ref},
        )
    ]  # fmt: skip


@router.on(FriendAdded)
async def welcome_new_friend(event: FriendAdded, ctx: Context) -> None:
    arrival = resolve_channel(ctx, event.state, Platform.WECOM_FRIEND)
    customer = await ensure_customer(ctx, "external_userid", event.external_userid)
    customer.wecom_friend = True
    at = datetime.fromtimestamp(event.create_time, UTC)
    await queue_welcome(ctx, event, customer, arrival, at)
    await record_touch(
        ctx, customer, arrival, raw_key=event.state, platform=Platform.WECOM_FRIEND, action="friend_added",
        at=at, staff_userid=event.user_id,
    )  # fmt: skip
    await _remember_relation(ctx, customer, event.user_id, arrival.code, at)
    tags = await tag_locally(ctx, customer, arrival.channel)
    await mark_wecom_tags(ctx, event.user_id, event.external_userid, tags)
    ctx.call_platform(
        "wecom", "externalcontact/get", {}, method="GET", params={"external_userid": event.external_userid},
        key="profile", priority=PRIORITY_DEFAULT, then="wecom_profile",
    )  # fmt: skip


async def queue_welcome(ctx: Context, event: FriendAdded, customer: Customer, arrival: Arrival, at: datetime) -> None:
    """Decide the welcome (channel message, A/B variant) and queue it ahead of everything else."""
    channel = arrival.channel
    message = channels_of(ctx.content).welcome_for(channel) if channel is not None else None
    row = Welcome(
        customer_id=customer.id, channel_code=arrival.code, via="send_welcome_msg",
        state="skipped", created_at=ctx.now(), receipt_id=ctx.receipt_id,
    )  # fmt: skip
    deadline = at + WELCOME_WINDOW
    queued = await _queued_welcome(ctx, event.welcome_code) if event.welcome_code else None
    if queued is not None:  # queued at the door with the receipt (or by an earlier run): record it, once
        note = queued.payload.get(NOTE)
        row.state, row.outbox_id = "queued", queued.id
        row.variant_ref = str(note["variant_ref"]) if isinstance(note, dict) and note.get("variant_ref") else None
    elif not event.welcome_code:
        row.reason = "no WelcomeCode (console welcome configured, already chatted, or used by the half-add)"
    elif message is None:
        row.reason = "channel has no welcome message"
    elif ctx.now() > deadline:
        row.state, row.reason = "expired", "welcome_code older than 20 s when handled"
    else:
        variant = choose_variant(message, ctx.rng, local_time_of(ctx.now(), ctx.settings.tz))
        media = await all_remote_ids(ctx.session, MEDIA)
        rendered = render(variant, _variables(customer.name, arrival), ctx.content.fallbacks, media)
        call = ctx.call_platform(
            "wecom", "externalcontact/send_welcome_msg", rendered.welcome_body(event.welcome_code),
            key=welcome_key(event.welcome_code), priority=PRIORITY_WELCOME, deadline=deadline,
        )  # fmt: skip
        await ctx.session.flush()
        row.state, row.variant_ref, row.outbox_id = "queued", rendered.variant_ref, call.id
        if rendered.missing_media:
            row.reason = "sent without attachments not uploaded yet: " + ", ".join(rendered.missing_media)
    ctx.session.add(row)


async def _queued_welcome(ctx: Context, welcome_code: str) -> OutboxCall | None:
    found = await ctx.session.scalars(select(OutboxCall).where(OutboxCall.idempotency_key == welcome_key(welcome_code)))
    return found.first()


def _variables(nickname: str | None, arrival: Arrival) -> dict[str, str | None]:
    channel = arrival.channel
    return {
        "nickname": nickname,  # known only for returning customers (not at the door); else the neutral fallback
        "staff_name": None,
        "channel": channel.code if channel else None,
        "channel_name": channel.name if channel else None,
    }


async def _remember_relation(ctx: Context, customer: Customer, staff: str, code: str | None, at: datetime) -> None:
    inserted = await insert_ignore(
        ctx.session, WeComRelation,
        {"customer_id": customer.id, "staff_userid": staff, "channel_code": code, "added_at": at, "active": True},
        ["customer_id", "staff_userid"],
    )  # fmt: skip
    if not inserted:
        rel = await ctx.session.get(WeComRelation, (customer.id, staff))
        if rel is not None and not rel.active:  # a returning customer: a new relationship from this channel
            rel.active, rel.removed_at, rel.added_at, rel.channel_code = True, None, at, code


@router.on(FriendLost, FriendRemovedByStaff)
async def record_friend_loss(event: FriendLost | FriendRemovedByStaff, ctx: Context) -> None:
    """Churn per channel: the channel of *this* relationship (the staff member who was deleted/deleting)."""
    customer = await find_customer(ctx, "external_userid", event.external_userid)
    if customer is None:
        customer = await ensure_customer(ctx, "external_userid", event.external_userid)
    at = datetime.fromtimestamp(event.create_time, UTC)
    rel = await ctx.session.get(WeComRelation, (customer.id, event.user_id))
    code = rel.channel_code if rel is not None else customer.first_channel
    # Ended already: ``siyu-bot reconcile`` found it gone before this (late) callback came; counted once.
    ended = rel is not None and not rel.active and await _reconciled_loss(ctx, customer.id, event.user_id, rel.added_at)
    if rel is not None:
        rel.active, rel.removed_at = False, rel.removed_at if ended else at
    transfer = isinstance(event, FriendRemovedByStaff) and event.source == "DELETE_BY_TRANSFER"
    kind = "customer_deleted_staff" if isinstance(event, FriendLost) else "staff_deleted_customer"
    if not transfer and not ended:  # a transfer (在职继承) moves the customer to another member: not a loss
        values = {
            "customer_id": customer.id, "channel_code": code, "kind": kind, "staff_userid": event.user_id,
            "occurred_at": at, "receipt_id": ctx.receipt_id,
        }  # fmt: skip
        if await insert_ignore(ctx.session, Loss, values, ["receipt_id", "customer_id"]):
            await ctx.emit(CustomerLost(customer.id, code, kind, at))
    remaining = await ctx.session.scalar(
        select(WeComRelation.staff_userid).where(WeComRelation.customer_id == customer.id, WeComRelation.active)
    )
    customer.wecom_friend = remaining is not None
    customer.updated_at = ctx.now()


async def _reconciled_loss(ctx: Context, customer_id: int, staff: str, since: datetime) -> bool:
    found = await ctx.session.scalar(
        select(Loss.id)
        .where(Loss.customer_id == customer_id, Loss.staff_userid == staff, Loss.kind == FRIEND_GONE)
        .where(Loss.occurred_at >= since)
        .limit(1)
    )
    return found is not None


@router.on_result("wecom_profile")
async def learn_profile(result: PlatformResult, ctx: Context) -> None:
    """``externalcontact/get`` → name and unionid (the link to the same person's Official Account follow)."""
    contact = result.response.get("external_contact")
    if not isinstance(contact, dict) or not contact.get("external_userid"):
        return
    customer = await ensure_customer(ctx, "external_userid", str(contact["external_userid"]))
    if contact.get("name"):
        customer.name = str(contact["name"])[:128]
    if contact.get("unionid"):
        await link_unionid(ctx, customer, str(contact["unionid"]))
