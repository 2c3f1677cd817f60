"""Customer groups: kept current by re-reading ``groupchat/get``, never built from callback deltas.

WeCom's ``change_external_chat`` callbacks
(docs/platform.md#customer-group-events) are eventually consistent and may be lost or
arrive out of order, so a create/update callback is only a trigger: we queue a re-read 2 s later (the
wait the docs suggest) and reconcile the database with the snapshot
(docs/platform.md#group-detail). The snapshot is the truth;
every change against the database is a conditional write (insert-if-absent, ``UPDATE … WHERE active``),
so re-runs and overlapping snapshots never double-count a join or a leave.

A member who joins through a 加入群聊 code
(docs/platform.md#join-group-codes) carries the code's ``state`` in the snapshot: that is
the attribution. Group welcomes are templates WeCom sends itself
(docs/platform.md#group-welcome-templates): there is no per-join send.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content import Platform
from bot.context import Context
from bot.db.models import Customer, OutboxCall
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.events import GroupChanged, GroupCreated, GroupDismissed, GroupMembersJoined, GroupMembersLeft
from handlers.customers.identity import ensure_customer, link_unionid
from handlers.growth.attribution import mark_wecom_tags, record_touch, resolve_channel, tag_locally
from handlers.growth.content.model import Channel
from handlers.growth.events import ArrivalDiscovered, CustomerLost, GroupMemberJoined, GroupMemberLeft
from handlers.growth.stats import RECONCILED
from handlers.growth.tables import GroupChat, GroupMember, Loss, WeComRelation

router = Router("groups")

GROUPCHAT_GET = "externalcontact/groupchat/get"
SNAPSHOT = "group_snapshot"
# docs/platform.md#customer-group-events
SETTLE = timedelta(seconds=2)  # "可能需要等一段时间(例如2秒)" before groupchat/get is current
DEBOUNCE_WINDOW = timedelta(seconds=60)  # a busy group is still re-read at least this often
EXTERNAL = 2  # member_list[].type: 1 corp member, 2 external contact (docs/platform.md#group-detail)

GroupEvent = GroupCreated | GroupChanged | GroupMembersJoined | GroupMembersLeft


@router.on(GroupCreated, GroupChanged, GroupMembersJoined, GroupMembersLeft)
async def reread_group(event: GroupEvent, ctx: Context) -> None:
    await queue_snapshot(ctx, event.chat_id)


async def queue_snapshot(ctx: Context, chat_id: str) -> None:
    """Queue ``groupchat/get`` for ``now + 2 s``, or push back the chat's re-read still pending.

    One pending re-read per chat is enough: it reads whatever the group is by then. It is pushed back
    so that it runs at least 2 s after this event, unless it has been waiting longer than the debounce
    window (then a new one is queued, so a group that never stops changing is still read). The group
    row is locked first, so this serialises with a concurrent dismiss of the same chat.
    """
    if (await _lock_group(ctx, chat_id)).dismissed_at is not None:
        return
    now, due = ctx.now(), ctx.now() + SETTLE
    pending = await ctx.session.scalar(
        select(OutboxCall).where(*_pending_reread(chat_id)).order_by(OutboxCall.next_attempt_at.desc()).limit(1)
    )
    if pending is not None and pending.next_attempt_at >= due:
        return
    if pending is not None and pending.created_at > now - DEBOUNCE_WINDOW:
        pushed = await ctx.session.execute(  # conditional: the worker may be claiming it right now
            update(OutboxCall)
            .where(OutboxCall.id == pending.id, OutboxCall.state == "pending")
            .values(next_attempt_at=due)
            .execution_options(synchronize_session=False)
        )
        if pushed.rowcount:  # type: ignore[attr-defined]
            return
    body = {"chat_id": chat_id, "need_name": 1}
    ctx.call_platform("wecom", GROUPCHAT_GET, body, key=_snapshot_key(chat_id)[1:], not_before=due, then=SNAPSHOT)


@router.on(GroupDismissed)
async def close_group(event: GroupDismissed, ctx: Context) -> None:
    """Everyone leaves a dismissed group. No re-read: ``groupchat/get`` answers 49008 for it."""
    await dismiss_group(ctx, event.chat_id, datetime.fromtimestamp(event.create_time, UTC))


async def dismiss_group(ctx: Context, chat_id: str, at: datetime) -> int:
    """Close the group (once) and release its members; returns how many left."""
    group = await _lock_group(ctx, chat_id)
    if group.dismissed_at is not None:
        return 0
    group.dismissed_at, group.updated_at = at, ctx.now()
    left = 0
    for member in await _active_members(ctx.session, chat_id):
        left += await _release(ctx, member, at)
    await ctx.session.execute(
        update(OutboxCall)
        .where(*_pending_reread(chat_id))
        .values(state="expired", finished_at=ctx.now(), last_error="group dismissed")
        .execution_options(synchronize_session=False)
    )
    return left


@router.on_result(SNAPSHOT)
async def reconcile_group(result: PlatformResult, ctx: Context) -> None:
    """Make the stored group and member list match the ``groupchat/get`` snapshot."""
    chat = result.response.get("group_chat")
    if isinstance(chat, dict) and chat.get("chat_id"):
        await apply_snapshot(ctx, chat)


async def apply_snapshot(ctx: Context, chat: dict[str, Any], action: str = "group_joined") -> tuple[int, int]:
    """Store one ``groupchat/get`` snapshot: the group's details, members who joined (their touch has
    ``action``) and members who left. Returns (joined, left); (0, 0) for a dismissed group."""
    chat_id = str(chat["chat_id"])
    group = await _lock_group(ctx, chat_id)
    if group.dismissed_at is not None:  # a read that raced the dismiss: never resurrect the group
        return 0, 0
    _copy_details(group, chat, ctx.now())
    version = str(chat.get("member_version") or "") or None
    if version is not None and version == group.member_version:
        return 0, 0  # no member change since the last snapshot we applied
    listed = {str(m["userid"]): m for m in chat.get("member_list") or () if isinstance(m, dict) and m.get("userid")}
    active = {m.member_id: m for m in await _active_members(ctx.session, chat_id)}
    joined = left = 0
    for member_id, member in listed.items():
        if member_id not in active:
            joined += await _admit(ctx, chat_id, member, action)
    for member_id, row in active.items():
        if member_id not in listed:
            left += await _release(ctx, row, ctx.now())
    group.member_version = version
    return joined, left


async def _lock_group(ctx: Context, chat_id: str) -> GroupChat:
    """The group row, created if new, locked for this transaction (PostgreSQL; SQLite serialises writers)."""
    await insert_ignore(ctx.session, GroupChat, {"chat_id": chat_id, "name": "", "updated_at": ctx.now()}, ["chat_id"])
    group = await ctx.session.scalar(
        select(GroupChat)
        .where(GroupChat.chat_id == chat_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert group is not None
    return group


def _copy_details(group: GroupChat, chat: dict[str, Any], now: datetime) -> None:
    group.name = str(chat.get("name") or "")[:128]
    group.owner = str(chat.get("owner") or "") or None
    group.notice = str(chat.get("notice") or "") or None
    if isinstance(chat.get("create_time"), int):
        group.created_at = datetime.fromtimestamp(chat["create_time"], UTC)
    group.updated_at = now


async def _active_members(session: AsyncSession, chat_id: str) -> list[GroupMember]:
    rows = await session.scalars(select(GroupMember).where(GroupMember.chat_id == chat_id, GroupMember.active))
    return list(rows.all())


async def _admit(ctx: Context, chat_id: str, member: dict[str, Any], action: str) -> bool:
    """A member in the snapshot but not active here: store them; a customer is attributed and tagged.
    False when another run admitted them first."""
    member_id, state = str(member["userid"]), str(member.get("state") or "") or None
    unionid = str(member.get("unionid") or "") or None
    joined = datetime.fromtimestamp(member["join_time"], UTC) if isinstance(member.get("join_time"), int) else None
    customer = await _customer_of(ctx, member_id, member, unionid) if member.get("type") == EXTERNAL else None
    arrival = resolve_channel(ctx, state, Platform.WECOM_GROUP)
    values = {
        "member_type": int(member.get("type") or 0), "customer_id": customer.id if customer else None,
        "unionid": unionid, "state": state, "channel_code": arrival.code if customer else None,
        "join_scene": member.get("join_scene") if isinstance(member.get("join_scene"), int) else None,
        "joined_at": joined or ctx.now(), "left_at": None, "active": True,
    }  # fmt: skip
    if not await _store_join(ctx.session, chat_id, member_id, values):
        return False
    await ctx.emit(GroupMemberJoined(chat_id, member_id, customer.id if customer else None))
    if customer is None:
        return True
    await record_touch(
        ctx, customer, arrival, raw_key=state, platform=Platform.WECOM_GROUP, action=action,
        at=joined or ctx.now(), chat_id=chat_id,
    )  # fmt: skip
    await _tag(ctx, customer, member_id, arrival.channel)
    if action == RECONCILED:  # joined while no callback reached us: the drips that allow a late entry
        await ctx.emit(ArrivalDiscovered(customer.id, arrival.code, Platform.WECOM_GROUP.value, ctx.now()))
    return True


async def _customer_of(ctx: Context, member_id: str, member: dict[str, Any], unionid: str | None) -> Customer:
    customer = await ensure_customer(ctx, "external_userid", member_id)
    if unionid:
        customer = await link_unionid(ctx, customer, unionid)
    if member.get("name") and not customer.name:
        customer.name = str(member["name"])[:128]
    return customer


async def _store_join(session: AsyncSession, chat_id: str, member_id: str, values: dict[str, Any]) -> bool:
    """Insert the member, or reactivate one who had left. False when another run already did it."""
    if await insert_ignore(
        session, GroupMember, {"chat_id": chat_id, "member_id": member_id, **values}, ["chat_id", "member_id"]
    ):
        return True
    back = await session.execute(
        update(GroupMember)
        .where(GroupMember.chat_id == chat_id, GroupMember.member_id == member_id, GroupMember.active.is_(False))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(back.rowcount)  # type: ignore[attr-defined]


async def _tag(ctx: Context, customer: Customer, external_userid: str, channel: Channel | None) -> None:
    """The group channel's tags: locally always; in WeCom only through a staff member who has this
    customer as a friend (``mark_tag`` is per member–customer relationship, docs/platform.md#corp-tags)."""
    if channel is None or channel.platform is not Platform.WECOM_GROUP:
        return  # no join-way state: don't stamp a friend channel's default tags on a group member
    tags = await tag_locally(ctx, customer, channel)
    staff = await ctx.session.scalar(
        select(WeComRelation.staff_userid)
        .where(WeComRelation.customer_id == customer.id, WeComRelation.active)
        .order_by(WeComRelation.added_at, WeComRelation.staff_userid)
        .limit(1)
    )
    if staff is not None and tags:
        await mark_wecom_tags(ctx, staff, external_userid, tags)


async def _release(ctx: Context, member: GroupMember, at: datetime) -> bool:
    """Mark the member left (if still active) and record the loss against the channel they joined by.
    False when another run released them first."""
    left = await ctx.session.execute(
        update(GroupMember)
        .where(GroupMember.id == member.id, GroupMember.active.is_(True))
        .values(active=False, left_at=at)
        .execution_options(synchronize_session=False)
    )
    if not left.rowcount:  # type: ignore[attr-defined]
        return False
    await ctx.emit(GroupMemberLeft(member.chat_id, member.member_id, member.customer_id))
    if member.customer_id is None:
        return True
    values = {
        "customer_id": member.customer_id, "channel_code": member.channel_code, "kind": "left_group",
        "chat_id": member.chat_id, "occurred_at": at, "receipt_id": ctx.receipt_id,
    }  # fmt: skip
    if await insert_ignore(ctx.session, Loss, values, ["receipt_id", "customer_id"]):
        await ctx.emit(CustomerLost(member.customer_id, member.channel_code, "left_group", at))
    return True


def _pending_reread(chat_id: str) -> tuple[ColumnElement[bool], ...]:
    """The chat's re-reads that have not started yet."""
    return (
        OutboxCall.api == GROUPCHAT_GET,
        OutboxCall.state == "pending",
        OutboxCall.idempotency_key.endswith(_snapshot_key(chat_id), autoescape=True),
    )


def _snapshot_key(chat_id: str) -> str:
    """Suffix of the idempotency key of a chat's re-read (``r<receipt>:groupchat:<chat_id>``)."""
    return f":groupchat:{chat_id}"
