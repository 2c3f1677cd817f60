"""Official Account follows and scans: attribute by QR scene, tag, welcome in the passive reply.

A follow through a parametric QR arrives as ``subscribe`` with ``qrscene_<scene>``; a follower scanning
another code arrives as ``SCAN``
(docs/platform.md#follow-and-scan-events). The channel's welcome depends only on content, so
it is a reply planner (bot/reply_plan.py): the transport answers with it as soon as the receipt is
committed
(docs/platform.md#passive-replies), and the handler, run afterwards, records what was sent without returning it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo

from sqlalchemy import select

from bot.content import Content, LinkAttachment, Platform, choose_variant, render
from bot.context import Context
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.events import Followed, MessageReceived, Scanned, TextReceived, Unfollowed
from bot.replies import NewsReply, Reply, TextReply
from bot.reply_plan import Planning, local_time_of_event, rng_for
from handlers.customers.identity import ensure_customer, link_unionid
from handlers.growth.attribution import Arrival, arrival_for, mark_mp_tags, record_touch, tag_locally
from handlers.growth.content import channels_of
from handlers.growth.events import CustomerLost, CustomerWrote, MpFollowed, MpUnfollowed
from handlers.growth.tables import Loss, Touch, Welcome

router = Router("follow")


@dataclass(frozen=True, slots=True)
class WelcomePlan:
    """The channel's welcome for one follow/scan: what the planner answers and the handler records."""

    arrival: Arrival
    reply: Reply | None
    variant_ref: str | None


def plan_welcome(event: Followed | Scanned, content: Content, tz: tzinfo) -> WelcomePlan:
    """Pure: the same event and content give the same variant (seeded by the event's dedup key, at its
    CreateTime), so the Welcome row names the variant that was actually sent."""
    arrival = arrival_for(content, event.scene, Platform.MP)
    reply, variant_ref = _welcome_reply(content, arrival, rng_for(event), local_time_of_event(event, tz))
    return WelcomePlan(arrival, reply, variant_ref)


@router.plans(Followed, Scanned)
def welcome_as_passive_reply(event: Followed | Scanned, planning: Planning) -> Reply | None:
    return plan_welcome(event, planning.content, planning.tz).reply


@router.on(Followed, Scanned)
async def welcome_follower(event: Followed | Scanned, ctx: Context) -> None:
    """Attribution, tags, profile, and the Welcome row; the welcome itself went out as the planned reply."""
    plan = plan_welcome(event, ctx.content, ctx.settings.tz)
    arrival = plan.arrival
    customer = await ensure_customer(ctx, "openid", event.openid)
    customer.mp_follower = True
    at = datetime.fromtimestamp(event.create_time, UTC)
    action = "followed" if isinstance(event, Followed) else "scanned"
    await record_touch(ctx, customer, arrival, raw_key=event.scene, platform=Platform.MP, action=action, at=at)
    if isinstance(event, Followed):
        await ctx.emit(MpFollowed(customer.id, event.openid, arrival.code, event.scene, at))
    tags = await tag_locally(ctx, customer, arrival.channel)
    await mark_mp_tags(ctx, event.openid, tags)
    if isinstance(event, Followed):
        ctx.call_platform(
            "mp", "user/info", {}, method="GET", params={"openid": event.openid, "lang": "zh_CN"},
            key="profile", then="mp_profile",
        )  # fmt: skip
    ctx.session.add(
        Welcome(
            customer_id=customer.id, channel_code=arrival.code,
            variant_ref=plan.variant_ref, via="passive_reply", state="sent" if plan.reply else "skipped",
            reason=None if plan.reply else "channel has no welcome message", created_at=ctx.now(),
            receipt_id=ctx.receipt_id,
        )
    )  # fmt: skip


def _welcome_reply(
    content: Content, arrival: Arrival, rng: random.Random, local_time: time
) -> tuple[Reply | None, str | None]:
    """Text reply, or a one-article news reply when the variant leads with a link
    (docs/platform.md#passive-replies: 1 article)."""
    channel = arrival.channel
    message = channels_of(content).welcome_for(channel) if channel is not None else None
    if channel is None or message is None:
        return None, None
    variant = choose_variant(message, rng, local_time)
    variables: dict[str, str | None] = {"nickname": None, "staff_name": None, "channel": channel.code}
    variables["channel_name"] = channel.name
    rendered = render(variant, variables, content.fallbacks)
    if rendered.text:
        return TextReply(rendered.text), rendered.variant_ref
    link = next((a for a in variant.attachments if isinstance(a, LinkAttachment)), None)
    if link is not None:
        return NewsReply(link.title, link.desc or "", link.url, link.picurl or ""), rendered.variant_ref
    return None, rendered.variant_ref


@router.on(Unfollowed)
async def record_unfollow(event: Unfollowed, ctx: Context) -> None:
    """Churn: the channel of the follower's latest Official Account touch."""
    customer = await ensure_customer(ctx, "openid", event.openid)
    customer.mp_follower = False
    customer.updated_at = ctx.now()
    code = await ctx.session.scalar(
        select(Touch.channel_code)
        .where(Touch.customer_id == customer.id, Touch.platform == Platform.MP.value)
        .order_by(Touch.occurred_at.desc(), Touch.id.desc())
        .limit(1)
    )
    at = datetime.fromtimestamp(event.create_time, UTC)
    values = {
        "customer_id": customer.id, "channel_code": code, "kind": "unfollowed", "occurred_at": at,
        "receipt_id": ctx.receipt_id,
    }  # fmt: skip
    if await insert_ignore(ctx.session, Loss, values, ["receipt_id", "customer_id"]):
        await ctx.emit(MpUnfollowed(customer.id, event.openid, at))
        await ctx.emit(CustomerLost(customer.id, code, "unfollowed", at))


@router.on(TextReceived, MessageReceived)
async def announce_message(event: TextReceived | MessageReceived, ctx: Context) -> None:
    """Tell the other features (and integrations) that a follower wrote — when anyone listens."""
    if not ctx.heard(CustomerWrote):
        return
    customer = await ensure_customer(ctx, "openid", event.openid)
    text = event.content if isinstance(event, TextReceived) else None
    msgtype = "text" if isinstance(event, TextReceived) else event.msg_type
    await ctx.emit(
        CustomerWrote(customer.id, event.openid, msgtype, text, datetime.fromtimestamp(event.create_time, UTC))
    )


@router.on_result("mp_profile")
async def learn_follower_profile(result: PlatformResult, ctx: Context) -> None:
    """``user/info`` → unionid, linking the follower to the same person's WeCom contact
    (docs/platform.md#follow-and-scan-events)."""
    openid, unionid = result.response.get("openid"), result.response.get("unionid")
    if isinstance(openid, str) and isinstance(unionid, str) and unionid:
        customer = await ensure_customer(ctx, "openid", openid)
        await link_unionid(ctx, customer, unionid)
