"""Attribution shared by every door: resolve the channel, record the touch, tag the customer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.content import Content, Platform
from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from handlers.growth.content import channels_of
from handlers.growth.content.model import Channel
from handlers.growth.events import CustomerTouched, TagsChanged
from handlers.growth.synced import MP_TAG, WECOM_TAG, remote_ids
from handlers.growth.tables import CustomerTag, Touch


@dataclass(frozen=True, slots=True)
class Arrival:
    """Which channel an arrival belongs to. ``attributed`` is False when the code was unknown or absent:
    the default channel's welcome and tags apply, but stats count it as unattributed."""

    channel: Channel | None
    attributed: bool

    @property
    def code(self) -> str | None:
        return self.channel.code if self.channel is not None and self.attributed else None


def resolve_channel(ctx: Context, key: str | None, platform: Platform) -> Arrival:
    """``State`` (WeCom) or QR scene (Official Account) → channel; unknown → the platform's default."""
    return arrival_for(ctx.content, key, platform)


def arrival_for(content: Content, key: str | None, platform: Platform) -> Arrival:
    """:func:`resolve_channel` from the content alone (reply planners have no Context)."""
    if key:
        found = (
            channels_of(content).channel_for_scene(key)
            if platform is Platform.MP
            else channels_of(content).channel_for_state(key)
        )
        if found is not None and found.platform is platform:
            return Arrival(found, True)
    return Arrival(channels_of(content).default_channel(platform), False)


async def record_touch(
    ctx: Context,
    customer: Customer,
    arrival: Arrival,
    *,
    raw_key: str | None,
    platform: Platform,
    action: str,
    at: datetime,
    staff_userid: str | None = None,
    chat_id: str | None = None,
) -> bool:
    """Record one arrival (first touch kept on the customer, every touch listed). False if already recorded."""
    first = customer.first_touch_at is None
    inserted = await insert_ignore(
        ctx.session,
        Touch,
        {
            "customer_id": customer.id, "channel_code": arrival.code, "raw_key": raw_key,
            "platform": platform.value, "action": action, "staff_userid": staff_userid, "chat_id": chat_id,
            "first": first, "occurred_at": at, "receipt_id": ctx.receipt_id,
        },
        ["receipt_id", "customer_id"],
    )  # fmt: skip
    if inserted and first:
        customer.first_touch_at, customer.first_channel = at, arrival.code
    customer.updated_at = ctx.now()
    if inserted:
        await ctx.emit(CustomerTouched(customer.id, arrival.code, platform.value, action, first, at))
    return inserted


async def tag_locally(ctx: Context, customer: Customer, channel: Channel | None) -> list[str]:
    """The channel's tags as customer facts (indexable for segments); returns the tag refs."""
    if channel is None:
        return []
    added = []
    for tag in channel.tags:
        if await insert_ignore(
            ctx.session,
            CustomerTag,
            {"customer_id": customer.id, "tag": tag, "source": f"channel:{channel.code}", "created_at": ctx.now()},
            ["customer_id", "tag"],
        ):
            added.append(tag)
    if added:
        await ctx.emit(TagsChanged(customer.id, tuple(added)))
    return list(channel.tags)


async def mark_wecom_tags(ctx: Context, userid: str, external_userid: str, tags: list[str]) -> None:
    """``externalcontact/mark_tag`` with the corp tag ids that ``content sync`` created (docs/platform.md#corp-tags)."""
    ids = await remote_ids(ctx.session, WECOM_TAG, tags)
    if ids:
        body = {"userid": userid, "external_userid": external_userid, "add_tag": [ids[t] for t in tags if t in ids]}
        ctx.call_platform("wecom", "externalcontact/mark_tag", body, key=f"mark_tag:{userid}:{external_userid}")


async def mark_mp_tags(ctx: Context, openid: str, tags: list[str]) -> None:
    """``tags/members/batchtagging`` once per Official Account tag (one openid each time)."""
    ids = await remote_ids(ctx.session, MP_TAG, tags)
    for tag in tags:
        if tag in ids:
            body = {"openid_list": [openid], "tagid": int(ids[tag])}
            ctx.call_platform("mp", "tags/members/batchtagging", body, key=f"mp_tag:{openid}:{ids[tag]}")
