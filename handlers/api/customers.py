"""``/api/v1/customers``: search, profile, timeline, tags and drip enrolments of one customer."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actions import run_action
from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from handlers.api.http import (
    Call,
    Problem,
    audit_entry,
    decode_cursor,
    invalid,
    json_body,
    json_response,
    limit_of,
    not_found,
    page,
    query_time,
    resource_response,
)
from handlers.growth.attribution import mark_mp_tags, mark_wecom_tags
from handlers.growth.events import TagsChanged
from handlers.growth.synced import MP_TAG, WECOM_TAG, remote_ids
from handlers.growth.tables import CustomerTag, GroupChat, GroupMember, Loss, Touch, Welcome
from handlers.interactions.tables import Checkin, Draw, PointsBalance
from handlers.orders.tables import Order
from handlers.sop.content import sop_of
from handlers.sop.drip_enrol import active_staff, enrol, stop_enrolment, tag_added
from handlers.sop.tables import DripEnrolment, DripStepRun

T = TypeVar("T")
TAG = re.compile(r"^[^/\x00-\x1f\x7f]{1,47}/[^/\x00-\x1f\x7f]{1,48}$")  # group/name, as content/ writes them
MAX_TAGS = 20


def summary(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "external_userid": c.external_userid,
        "openid": c.openid,
        "unionid": c.unionid,
        "wecom_friend": c.wecom_friend,
        "mp_follower": c.mp_follower,
        "first_channel": c.first_channel,
        "first_touch_at": c.first_touch_at,
        "created_at": c.created_at,
    }


async def search(call: Call) -> web.Response:
    q, limit, cursor = call.request.query, limit_of(call.request), decode_cursor(call.request)
    where: list[ColumnElement[bool]] = []
    if cursor is not None:
        where.append(Customer.id > _int_cursor(cursor))
    if term := q.get("q"):
        where.append(
            or_(
                *(
                    col.icontains(term, autoescape=True)
                    for col in (Customer.name, Customer.external_userid, Customer.openid, Customer.unionid)
                )
            )
        )
    for name, column in (
        ("external_userid", Customer.external_userid),
        ("openid", Customer.openid),
        ("unionid", Customer.unionid),
    ):
        if name in q:
            where.append(column == q[name])
    if "tag" in q:
        where.append(Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag == q["tag"])))
    if "channel" in q:
        where.append(Customer.id.in_(select(Touch.customer_id).where(Touch.channel_code == q["channel"])))
    if (after := query_time(call.request, "created_after")) is not None:
        where.append(Customer.created_at >= after)
    if (before := query_time(call.request, "created_before")) is not None:
        where.append(Customer.created_at < before)
    async with call.services.sessions() as session:
        rows = (await session.scalars(select(Customer).where(*where).order_by(Customer.id).limit(limit + 1))).all()
    return json_response(page([summary(c) for c in rows], limit, lambda item: [item["id"]]))


def _int_cursor(cursor: list[Any]) -> int:
    if not isinstance(cursor[0], int):
        raise invalid("cursor", "not a cursor this API handed out")
    return cursor[0]


async def _customer(session: AsyncSession, customer_id: int) -> Customer:
    found = await session.get(Customer, customer_id)
    if found is None:
        raise not_found(f"customer {customer_id}")
    return found


async def _all(session: AsyncSession, query: Any) -> list[Any]:
    return list((await session.execute(query)).all())


async def profile_of(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    cid = customer.id
    touches = await session.scalars(select(Touch).where(Touch.customer_id == cid).order_by(Touch.occurred_at, Touch.id))
    tags = await session.scalars(select(CustomerTag).where(CustomerTag.customer_id == cid).order_by(CustomerTag.tag))
    groups = await _all(
        session,
        select(GroupMember, GroupChat.name)
        .outerjoin(GroupChat, GroupChat.chat_id == GroupMember.chat_id)
        .where(GroupMember.customer_id == cid)
        .order_by(GroupMember.chat_id),
    )
    balance = await session.scalar(select(PointsBalance.balance).where(PointsBalance.customer_id == cid))
    checkins = await session.scalar(select(func.count()).select_from(Checkin).where(Checkin.customer_id == cid))
    draws = await session.scalars(select(Draw).where(Draw.customer_id == cid).order_by(Draw.drawn_at, Draw.id))
    drips = await session.scalars(
        select(DripEnrolment).where(DripEnrolment.customer_id == cid).order_by(DripEnrolment.id)
    )
    all_touches = [_touch(t) for t in touches.all()]
    first = next((t for t in all_touches if t["first"]), None)
    return {
        **summary(customer),
        "identities": {
            "external_userid": customer.external_userid,
            "openid": customer.openid,
            "unionid": customer.unionid,
        },
        "first_touch": first,
        "touches": all_touches,
        "tags": [{"tag": t.tag, "source": t.source, "created_at": t.created_at} for t in tags.all()],
        "groups": [
            {"chat_id": m.chat_id, "name": name, "active": m.active, "joined_at": m.joined_at, "left_at": m.left_at}
            for m, name in groups
        ],
        "orders": {
            "count": customer.purchase_count,
            "total_spent_cents": customer.total_spent_cents,
            "last_purchase_at": customer.last_purchase_at,
        },
        "points_balance": balance or 0,
        "checkins": int(checkins or 0),
        "draws": [
            {"id": d.id, "campaign_id": d.campaign_id, "prize_id": d.prize_id, "drawn_at": d.drawn_at}
            for d in draws.all()
        ],
        "drips": [enrolment_body(e) for e in drips.all()],
    }


def _touch(t: Touch) -> dict[str, Any]:
    return {
        "id": t.id,
        "channel": t.channel_code,
        "platform": t.platform,
        "action": t.action,
        "staff_userid": t.staff_userid,
        "chat_id": t.chat_id,
        "first": t.first,
        "at": t.occurred_at,
    }


def enrolment_body(e: DripEnrolment) -> dict[str, Any]:
    return {
        "drip_id": e.drip_id,
        "state": e.state,
        "stop_reason": e.stop_reason,
        "anchor_at": e.anchor_at,
        "ended_at": e.ended_at,
    }


async def profile(call: Call) -> web.Response:
    async with call.services.sessions() as session:
        customer = await _customer(session, call.int_param("id"))
        return resource_response(call.request, await profile_of(session, customer))


# --- the timeline ---

Item = dict[str, Any]


async def timeline_items(session: AsyncSession, cid: int) -> list[Item]:
    """Everything that happened to the customer, oldest first (by time, then kind, then id)."""
    items: list[Item] = []

    def add(kind: str, row_id: int, at: datetime | None, data: dict[str, Any]) -> None:
        if at is not None:
            items.append({"at": at, "kind": kind, "id": row_id, "data": data})

    for t in await session.scalars(select(Touch).where(Touch.customer_id == cid)):
        add("touch", t.id, t.occurred_at, {k: v for k, v in _touch(t).items() if k not in ("id", "at")})
    for w in await session.scalars(select(Welcome).where(Welcome.customer_id == cid)):
        add(
            "welcome",
            w.id,
            w.created_at,
            {"channel": w.channel_code, "variant": w.variant_ref, "via": w.via, "state": w.state},
        )
    for loss in await session.scalars(select(Loss).where(Loss.customer_id == cid)):
        add(
            "loss",
            loss.id,
            loss.occurred_at,
            {
                "channel": loss.channel_code,
                "kind": loss.kind,
                "staff_userid": loss.staff_userid,
                "chat_id": loss.chat_id,
            },
        )
    for o in await session.scalars(select(Order).where(Order.customer_id == cid)):
        add(
            "order",
            o.id,
            o.paid_at,
            {"order_id": o.order_id, "status": o.status, "amount_cents": o.amount_cents, "currency": o.currency},
        )
    for c in await session.scalars(select(Checkin).where(Checkin.customer_id == cid)):
        add(
            "checkin",
            c.id,
            c.checked_at,
            {"local_day": c.local_day, "streak": c.streak, "points": c.points, "source": c.source},
        )
    for d in await session.scalars(select(Draw).where(Draw.customer_id == cid)):
        add("draw", d.id, d.drawn_at, {"campaign_id": d.campaign_id, "prize_id": d.prize_id})
    for s in await session.scalars(select(DripStepRun).where(DripStepRun.customer_id == cid)):
        add(
            "drip_step",
            s.id,
            s.finished_at or s.due_at,
            {"drip_id": s.drip_id, "step_id": s.step_id, "state": s.state, "reason": s.reason},
        )
    items.sort(key=lambda i: (i["at"], i["kind"], i["id"]))
    return items


async def timeline(call: Call) -> web.Response:
    limit, cursor = limit_of(call.request), decode_cursor(call.request)
    after: tuple[datetime, str, int] | None = None
    if cursor is not None:
        try:
            after = (datetime.fromisoformat(cursor[0]), str(cursor[1]), int(cursor[2]))
        except (TypeError, ValueError, IndexError):
            raise invalid("cursor", "not a cursor this API handed out") from None
    async with call.services.sessions() as session:
        customer = await _customer(session, call.int_param("id"))
        items = await timeline_items(session, customer.id)
    if after is not None:
        items = [i for i in items if (i["at"], i["kind"], i["id"]) > after]
    return json_response(page(items[: limit + 1], limit, lambda i: [i["at"].isoformat(), i["kind"], i["id"]]))


# --- writes: tags and drips ---


async def _write(call: Call, fn: Callable[[Context], Awaitable[T]]) -> T:
    return await run_action(call.services, fn, scope=f"api:{secrets.token_hex(8)}")


async def _tags(session: AsyncSession, cid: int) -> list[str]:
    rows = await session.scalars(
        select(CustomerTag.tag).where(CustomerTag.customer_id == cid).order_by(CustomerTag.tag)
    )
    return list(rows.all())


def _tag_list(body: Any) -> list[str]:
    tags = body.get("tags") if isinstance(body, dict) else None
    if not isinstance(tags, list) or not 1 <= len(tags) <= MAX_TAGS:
        raise invalid("tags", f"must be a list of 1 to {MAX_TAGS} tags")
    for n, tag in enumerate(tags):
        if not isinstance(tag, str) or not TAG.match(tag):
            raise invalid(f"tags[{n}]", "must be a tag reference group/name (at most 96 characters)")
    return list(dict.fromkeys(tags))


async def add_tags(call: Call) -> web.Response:
    cid, wanted = call.int_param("id"), _tag_list(await json_body(call.request))
    return json_response(await tag_customer(call, cid, wanted))


async def tag_customer(call: Call, cid: int, wanted: list[str]) -> dict[str, Any]:
    """Add ``wanted`` tags here and on the platforms (through the outbox), audited as ``call``'s caller."""

    async def run(ctx: Context) -> dict[str, Any]:
        customer = await _customer(ctx.session, cid)
        before = await _tags(ctx.session, cid)
        source = f"api:{call.caller.name}"[:32]
        added = [
            tag
            for tag in wanted
            if await insert_ignore(
                ctx.session,
                CustomerTag,
                {"customer_id": cid, "tag": tag, "source": source, "created_at": ctx.now()},
                ["customer_id", "tag"],
            )
        ]
        if added:
            staff = await active_staff(ctx, cid)
            if staff is not None and customer.external_userid:
                await mark_wecom_tags(ctx, staff, customer.external_userid, added)
            if customer.openid and customer.mp_follower:
                await mark_mp_tags(ctx, customer.openid, added)
            await ctx.emit(TagsChanged(cid, tuple(added)))
            for tag in added:
                await tag_added(ctx, customer, tag, ctx.now())  # tag-triggered drips start, tag: stops apply
        after = await _tags(ctx.session, cid)
        audit_entry(ctx.session, call, f"customer:{cid}", {"tags": before}, {"tags": after})
        return {"customer_id": cid, "tags": after, "added": added, "removed": []}

    return await _write(call, run)


def tag_list(raw: list[str]) -> list[str]:
    """Validated tag references (400 problem otherwise), as the POST body's ``tags``."""
    return _tag_list({"tags": raw})


async def remove_tag(call: Call) -> web.Response:
    return json_response(await untag_customer(call, call.int_param("id"), call.param("tag")))


async def untag_customer(call: Call, cid: int, tag: str) -> dict[str, Any]:
    """Take ``tag`` off here and on the platforms (through the outbox), audited as ``call``'s caller."""

    async def run(ctx: Context) -> dict[str, Any]:
        customer = await _customer(ctx.session, cid)
        before = await _tags(ctx.session, cid)
        if tag not in before:
            raise not_found(f"tag {tag!r} on customer {cid}")
        await ctx.session.execute(delete(CustomerTag).where(CustomerTag.customer_id == cid, CustomerTag.tag == tag))
        staff = await active_staff(ctx, cid)
        wecom = await remote_ids(ctx.session, WECOM_TAG, [tag])
        if wecom and staff is not None and customer.external_userid:
            body = {"userid": staff, "external_userid": customer.external_userid, "remove_tag": list(wecom.values())}
            ctx.call_platform("wecom", "externalcontact/mark_tag", body, key=f"unmark_tag:{staff}")
        mp = await remote_ids(ctx.session, MP_TAG, [tag])
        if mp and customer.openid and customer.mp_follower:
            body_mp = {"openid_list": [customer.openid], "tagid": int(mp[tag])}
            ctx.call_platform("mp", "tags/members/batchuntagging", body_mp, key=f"mp_untag:{mp[tag]}")
        await ctx.emit(TagsChanged(cid, (), (tag,)))
        after = await _tags(ctx.session, cid)
        audit_entry(ctx.session, call, f"customer:{cid}", {"tags": before}, {"tags": after})
        return {"customer_id": cid, "tags": after, "added": [], "removed": [tag]}

    return await _write(call, run)


async def start_drip(call: Call) -> web.Response:
    cid, drip_id = call.int_param("id"), call.param("drip_id")

    async def run(ctx: Context) -> dict[str, Any]:
        customer = await _customer(ctx.session, cid)
        drip = sop_of(ctx.content).drip(drip_id)
        if drip is None:
            raise not_found(f"drip {drip_id!r}")
        if not drip.enabled:
            raise Problem(409, "Drip disabled", f"drip {drip_id!r} is disabled in content/")
        if not await enrol(ctx, customer, drip, ctx.now()):
            raise Problem(
                409, "Already enrolled", f"customer {cid} was enrolled in {drip_id!r} before (drips run once)"
            )
        enrolment = await _enrolment(ctx.session, cid, drip_id)
        after = enrolment_body(enrolment)
        audit_entry(ctx.session, call, f"customer:{cid}/drip:{drip_id}", None, after)
        return after

    return json_response(await _write(call, run), status=201)


async def stop_drip(call: Call) -> web.Response:
    cid, drip_id = call.int_param("id"), call.param("drip_id")

    async def run(ctx: Context) -> dict[str, Any]:
        await _customer(ctx.session, cid)
        enrolment = await _enrolment(ctx.session, cid, drip_id)
        if enrolment.state != "active":
            raise Problem(409, "Not active", f"the enrolment is {enrolment.state} already")
        before = enrolment_body(enrolment)
        await stop_enrolment(ctx, enrolment, f"api:{call.caller.name}")
        after = enrolment_body(enrolment)
        audit_entry(ctx.session, call, f"customer:{cid}/drip:{drip_id}", before, after)
        return after

    return json_response(await _write(call, run))


async def _enrolment(session: AsyncSession, cid: int, drip_id: str) -> DripEnrolment:
    found = await session.scalar(
        select(DripEnrolment).where(DripEnrolment.customer_id == cid, DripEnrolment.drip_id == drip_id)
    )
    if found is None:
        raise not_found(f"enrolment of customer {cid} in drip {drip_id!r}")
    return found
