"""Official Account follows and scans: attribute by QR scene, tag, welcome in the passive reply.

A follow through a parametric QR arrives as ``subscribe`` with ``qrscene_<scene>``; a follower scanning
another code arrives as ``SCAN`` (reference §8.1). The channel's welcome is the passive reply (§8.3);
if the reply budget passes, the dispatcher sends it as a customer-service message instead, which the
platform allows for 1 minute after a follow or scan (§8.4).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot.content import LinkAttachment, Platform, choose_variant, local_time_of, render
from bot.context import Context
from bot.db.growth import Loss, Touch, Welcome
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.events import Followed, Scanned, Unfollowed
from bot.replies import NewsReply, Reply, TextReply
from handlers.attribution import Arrival, mark_mp_tags, record_touch, resolve_channel, tag_locally
from handlers.identity import ensure_customer, link_unionid

router = Router("follow")


@router.on(Followed, Scanned)
async def welcome_follower(event: Followed | Scanned, ctx: Context) -> Reply | None:
    arrival = resolve_channel(ctx, event.scene, Platform.MP)
    customer = await ensure_customer(ctx, "openid", event.openid)
    customer.mp_follower = True
    at = datetime.fromtimestamp(event.create_time, UTC)
    action = "followed" if isinstance(event, Followed) else "scanned"
    await record_touch(ctx, customer, arrival, raw_key=event.scene, platform=Platform.MP, action=action, at=at)
    tags = await tag_locally(ctx, customer, arrival.channel)
    await mark_mp_tags(ctx, event.openid, tags)
    if isinstance(event, Followed):
        ctx.call_platform(
            "mp", "user/info", {}, method="GET", params={"openid": event.openid, "lang": "zh_CN"},
            key="profile", then="mp_profile",
        )  # fmt: skip
    reply, variant_ref = _welcome_reply(ctx, arrival)
    ctx.session.add(
        Welcome(
            customer_id=customer.id, channel_code=arrival.code,
            variant_ref=variant_ref, via="passive_reply", state="sent" if reply else "skipped",
            reason=None if reply else "channel has no welcome message", created_at=ctx.now(),
            receipt_id=ctx.receipt_id,
        )
    )  # fmt: skip
    return reply


def _welcome_reply(ctx: Context, arrival: Arrival) -> tuple[Reply | None, str | None]:
    """Text reply, or a one-article news reply when the variant leads with a link (§8.3: 1 article)."""
    channel = arrival.channel
    message = ctx.content.welcome_for(channel) if channel is not None else None
    if channel is None or message is None:
        return None, None
    variant = choose_variant(message, ctx.rng, local_time_of(ctx.now(), ctx.settings.tz))
    variables: dict[str, str | None] = {"nickname": None, "staff_name": None, "channel": channel.code}
    variables["channel_name"] = channel.name
    rendered = render(variant, variables, ctx.content.fallbacks)
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
    values = {
        "customer_id": customer.id, "channel_code": code, "kind": "unfollowed",
        "occurred_at": datetime.fromtimestamp(event.create_time, UTC), "receipt_id": ctx.receipt_id,
    }  # fmt: skip
    await insert_ignore(ctx.session, Loss, values, ["receipt_id", "customer_id"])


@router.on_result("mp_profile")
async def learn_follower_profile(result: PlatformResult, ctx: Context) -> None:
    """``user/info`` → unionid, linking the follower to the same person's WeCom contact (§8.1)."""
    openid, unionid = result.response.get("openid"), result.response.get("unionid")
    if isinstance(openid, str) and isinstance(unionid, str) and unionid:
        customer = await ensure_customer(ctx, "openid", openid)
        await link_unionid(ctx, customer, unionid)
