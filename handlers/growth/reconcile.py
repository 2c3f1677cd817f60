"""``siyu-bot reconcile``: what the platform knows that no callback told us (the server was down longer
than WeChat retries), recorded as reconciled facts.

Reads the same lists as ``import`` (:mod:`handlers.growth.lister`) and compares them with what is stored:

- a customer relationship (customer × follow user) on the platform but not active here: a **new
  customer**, attributed by its ``state`` exactly as the callback would (touch action ``reconciled`` at
  the platform's ``createtime``, the channel's tags), never welcomed (the welcome_code is gone);
  :class:`~handlers.growth.events.ArrivalDiscovered` starts the drips with ``late_entry`` from now. One
  older than siyu-bot's first stored callback predates it: recorded as ``import`` would (touch action
  ``imported``, no tags, no drip) and counted apart (``preexisting``) — that is ``import``'s job;
- an active relationship here that the platform no longer lists: a **loss** (kind ``friend_gone``: who
  deleted whom is not known), :class:`~handlers.growth.events.CustomerLost` as from the callback;
- groups: each ``groupchat/get`` snapshot applied as the group callbacks do (joins with touch action
  ``reconciled``, leaves as ``left_group`` losses); a stored group the platform no longer lists was
  dismissed: its members leave;
- corp tags on the platform and not here are added; tags learnt from the platform (``imported``,
  ``reconciled``) that it no longer lists are removed (:class:`~handlers.growth.events.TagsChanged`);
- Official Account followers not known as followers: **new followers** (as above, channel of the QR
  scene); known followers the platform no longer lists: **unfollows**.

Every write is conditional (``INSERT … ON CONFLICT DO NOTHING``, ``UPDATE … WHERE active``), so a second
run changes nothing and a callback for the same customer racing the run is counted once. Facts younger
than :data:`GRACE` before the run started are left to their callback (it may be in flight); the next run
picks them up if it was lost. Losses are decided only after a complete listing. Each page is one
transaction through :func:`bot.actions.run_action` (domain events are heard; platform calls go out).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import delete, func, select, update

from bot.actions import run_action
from bot.content import Platform
from bot.context import Context, Runtime
from bot.db.models import Customer, Receipt
from bot.db.upsert import insert_ignore
from bot.platform import MpClient, WeComClient
from handlers.customers.identity import ensure_customer, find_customer, link_unionid
from handlers.growth.attribution import arrival_for, mark_mp_tags, mark_wecom_tags, record_touch, tag_locally
from handlers.growth.events import ArrivalDiscovered, CustomerLost, MpUnfollowed, TagsChanged
from handlers.growth.friends import FRIEND_GONE
from handlers.growth.groups import apply_snapshot, dismiss_group
from handlers.growth.lister import FOLLOWERS_PER_BATCH, Lister, at_of, text_of
from handlers.growth.stats import IMPORTED, RECONCILED
from handlers.growth.tables import CustomerTag, GroupChat, Loss, Touch, WeComRelation

GRACE = timedelta(minutes=5)  # younger facts are left to their callback (it may be on its way)
LOST_BATCH = 500
LEARNT = (IMPORTED, RECONCILED)  # tag sources that mirror the platform (others are ours: channel, drip …)


@dataclass
class Found:
    customers_new: int = 0
    customers_lost: int = 0
    members_joined: int = 0
    members_left: int = 0
    tags_changed: int = 0
    followers_new: int = 0
    followers_lost: int = 0
    preexisting: int = 0  # relationships older than siyu-bot's first callback: imported, not arrivals

    @property
    def changed(self) -> int:
        return sum(int(getattr(self, f.name)) for f in fields(self))

    def add(self, other: Found) -> None:
        for f in fields(self):
            setattr(self, f.name, int(getattr(self, f.name)) + int(getattr(other, f.name)))

    def counts(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


def summary(found: Found) -> str:
    f = found
    line = (
        f"reconciled: {f.customers_new} new, {f.customers_lost} lost, {f.members_joined} joined, "
        f"{f.members_left} left, {f.tags_changed} tags changed; "
        f"followers {f.followers_new} new, {f.followers_lost} unfollowed"
    )
    if f.preexisting:
        line += (
            f"; {f.preexisting} from before siyu-bot's first callback recorded as imported "
            "(run `siyu-bot import` on day one)"
        )
    return line if f.changed else line + " (nothing changed)"


class Reconciliation:
    def __init__(self, services: Runtime, wecom: WeComClient | None, mp: MpClient | None, out: TextIO | None) -> None:
        self.services, self.out = services, out
        self.lister = Lister(wecom, mp)
        self.found = Found()
        self.started = services.clock.now()
        self.live_since: datetime | None = None  # the first stored callback: what is older predates siyu-bot
        self.corp_tags: dict[str, str] = {}
        self.seen: dict[int, set[str]] = defaultdict(set)  # customer id → staff userids listing them
        self.platform_tags: dict[int, set[str]] = defaultdict(set)  # customer id → corp tag refs

    async def run(self) -> Found:
        self.started = self.services.clock.now()
        async with self.services.sessions() as session:
            self.live_since = await session.scalar(select(func.min(Receipt.received_at)))
        if self.lister.wecom is not None:
            self.corp_tags = await self.lister.corp_tags()
            await self._customers()
            await self._groups()
        if self.lister.mp is not None:
            await self._followers()
        return self.found

    async def _tx(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """``fn(ctx, found, *args)`` in one transaction; what it found counts once it committed (a
        transaction retried on a locked SQLite database starts its count again)."""

        async def attempt(ctx: Context) -> Found:
            found = Found()
            await fn(ctx, found, *args)
            return found

        self.found.add(await run_action(self.services, attempt, scope=f"reconcile:{time.time_ns()}"))

    def _progress(self, what: str, done: int) -> None:
        if self.out is not None:
            print(f"{what}: {done} read", file=self.out, flush=True)

    @property
    def cutoff(self) -> datetime:
        return self.started - GRACE

    # --- WeCom customers ------------------------------------------------------------------------

    async def _customers(self) -> None:
        read = 0
        async for page in self.lister.customer_pages():
            await self._tx(self._customer_page, page.rows)
            read += len(page.rows)
            self._progress("customers", read)
        await self._losses()
        await self._tag_removals()

    async def _customer_page(self, ctx: Context, found: Found, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            contact, follow = row.get("external_contact") or {}, row.get("follow_info") or {}
            if contact.get("external_userid") and follow.get("userid"):
                await self._relation(ctx, found, contact, follow)

    async def _relation(self, ctx: Context, found: Found, contact: dict[str, Any], follow: dict[str, Any]) -> None:
        ext, staff = str(contact["external_userid"]), str(follow["userid"])
        at = at_of(follow.get("createtime")) or ctx.now()
        if at >= self.cutoff:  # so recent that its callback may be on its way: left to it (or the next run)
            known = await find_customer(ctx, "external_userid", ext)
            if known is not None:
                self.seen[known.id].add(staff)
            return
        customer = await ensure_customer(ctx, "external_userid", ext)
        if text_of(contact.get("unionid")):
            customer = await link_unionid(ctx, customer, str(contact["unionid"]))
        if contact.get("name") and not customer.name:
            customer.name = str(contact["name"])[:128]
        self.seen[customer.id].add(staff)
        tags = [self.corp_tags[t] for t in map(str, follow.get("tag_id") or ()) if t in self.corp_tags]
        self.platform_tags[customer.id].update(tags)
        await self._add_tags(ctx, found, customer, tags)
        late = self._late(at)
        if await self._activate(ctx, customer, staff, follow, at, late):
            found.customers_new += int(late)
            found.preexisting += int(not late)

    def _late(self, at: datetime) -> bool:
        """An arrival while siyu-bot was already there (its callback was lost), not one from before it."""
        return self.live_since is not None and at >= self.live_since

    async def _activate(
        self, ctx: Context, customer: Customer, staff: str, follow: dict[str, Any], at: datetime, late: bool
    ) -> bool:
        """The relationship, unless it is active already (then False: nothing happened). Only a ``late``
        arrival is tagged with its channel and announced (late-entry drips); an older one is imported."""
        state = text_of(follow.get("state"))
        arrival = arrival_for(ctx.content, state, Platform.WECOM_FRIEND)
        values = {"channel_code": arrival.code, "added_at": at, "removed_at": None, "active": True}
        if not await insert_ignore(
            ctx.session, WeComRelation, {"customer_id": customer.id, "staff_userid": staff, **values},
            ["customer_id", "staff_userid"],
        ):  # fmt: skip
            back = await ctx.session.execute(
                update(WeComRelation)
                .where(WeComRelation.customer_id == customer.id, WeComRelation.staff_userid == staff)
                .where(WeComRelation.active.is_(False))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if not back.rowcount:  # type: ignore[attr-defined]
                return False
        customer.wecom_friend = True
        await record_touch(
            ctx, customer, arrival, raw_key=state, platform=Platform.WECOM_FRIEND,
            action=RECONCILED if late else IMPORTED, at=at, staff_userid=staff,
        )  # fmt: skip
        if late:
            tags = await tag_locally(ctx, customer, arrival.channel)
            await mark_wecom_tags(ctx, staff, str(customer.external_userid), tags)
            await ctx.emit(ArrivalDiscovered(customer.id, arrival.code, Platform.WECOM_FRIEND.value, ctx.now()))
        return True

    async def _add_tags(self, ctx: Context, found: Found, customer: Customer, refs: list[str]) -> None:
        added = []
        for ref in dict.fromkeys(refs):
            row = {"customer_id": customer.id, "tag": ref[:96], "source": RECONCILED, "created_at": ctx.now()}
            if await insert_ignore(ctx.session, CustomerTag, row, ["customer_id", "tag"]):
                added.append(ref[:96])
        if added:
            found.tags_changed += len(added)
            await ctx.emit(TagsChanged(customer.id, tuple(added)))

    async def _losses(self) -> None:
        """Active relationships of the listed follow users that the complete listing did not show."""
        users = set(self.lister.follow_users)
        async with self.services.sessions() as session:
            rows = (
                await session.execute(
                    select(WeComRelation.customer_id, WeComRelation.staff_userid).where(
                        WeComRelation.active, WeComRelation.added_at < self.cutoff
                    )
                )
            ).all()
        gone = [(c, s) for c, s in rows if s in users and s not in self.seen.get(c, ())]
        for i in range(0, len(gone), LOST_BATCH):
            await self._tx(self._lose, gone[i : i + LOST_BATCH])

    async def _lose(self, ctx: Context, found: Found, pairs: list[tuple[int, str]]) -> None:
        for customer_id, staff in pairs:
            ended = await ctx.session.execute(
                update(WeComRelation)
                .where(WeComRelation.customer_id == customer_id, WeComRelation.staff_userid == staff)
                .where(WeComRelation.active.is_(True))
                .values(active=False, removed_at=ctx.now())
                .execution_options(synchronize_session=False)
            )
            if not ended.rowcount:  # type: ignore[attr-defined]
                continue  # a callback recorded it meanwhile
            code = await ctx.session.scalar(
                select(WeComRelation.channel_code).where(
                    WeComRelation.customer_id == customer_id, WeComRelation.staff_userid == staff
                )
            )
            remaining = await ctx.session.scalar(
                select(WeComRelation.staff_userid).where(WeComRelation.customer_id == customer_id, WeComRelation.active)
            )
            customer = await ctx.session.get(Customer, customer_id)
            if customer is not None:
                customer.wecom_friend, customer.updated_at = remaining is not None, ctx.now()
            ctx.session.add(
                Loss(
                    customer_id=customer_id, channel_code=code, kind=FRIEND_GONE, staff_userid=staff,
                    occurred_at=ctx.now(), receipt_id=None,
                )
            )  # fmt: skip
            found.customers_lost += 1
            await ctx.emit(CustomerLost(customer_id, code, FRIEND_GONE, ctx.now()))

    async def _tag_removals(self) -> None:
        """Tags learnt from the platform that no relationship of the customer carries any more."""
        known = set(self.corp_tags.values())
        async with self.services.sessions() as session:
            rows = (
                await session.execute(
                    select(CustomerTag.customer_id, CustomerTag.tag).where(
                        CustomerTag.source.in_(LEARNT), CustomerTag.created_at < self.started
                    )
                )
            ).all()
        stale = [(c, t) for c, t in rows if c in self.seen and t in known and t not in self.platform_tags.get(c, ())]
        for i in range(0, len(stale), LOST_BATCH):
            await self._tx(self._remove_tags, stale[i : i + LOST_BATCH])

    async def _remove_tags(self, ctx: Context, found: Found, pairs: list[tuple[int, str]]) -> None:
        for customer_id, tag in pairs:
            gone = await ctx.session.execute(
                delete(CustomerTag)
                .where(CustomerTag.customer_id == customer_id, CustomerTag.tag == tag)
                .execution_options(synchronize_session=False)
            )
            if gone.rowcount:  # type: ignore[attr-defined]
                found.tags_changed += 1
                await ctx.emit(TagsChanged(customer_id, (), (tag,)))

    # --- groups ---------------------------------------------------------------------------------

    async def _groups(self) -> None:
        read, listed = 0, set[str]()
        async for page in self.lister.group_pages():
            await self._tx(self._group_page, page.rows)
            listed.update(str(chat["chat_id"]) for chat in page.rows)
            read += len(page.rows)
            self._progress("groups", read)
        async with self.services.sessions() as session:
            stored = await session.scalars(
                select(GroupChat.chat_id).where(GroupChat.dismissed_at.is_(None), GroupChat.updated_at < self.cutoff)
            )
            gone = [c for c in stored.all() if c not in listed]
        for chat_id in gone:  # not listed: dismissed (groupchat/get says 49008), or its owner is not visible
            detail = await self.lister.group_detail(chat_id)
            if detail is None:
                await self._tx(self._dismissed, chat_id)
            else:
                await self._tx(self._group_page, [detail])

    async def _dismissed(self, ctx: Context, found: Found, chat_id: str) -> None:
        """A group dismissed while we were down: everyone left."""
        found.members_left += await dismiss_group(ctx, chat_id, ctx.now())

    async def _group_page(self, ctx: Context, found: Found, chats: list[dict[str, Any]]) -> None:
        for chat in chats:
            joined, left = await apply_snapshot(ctx, chat, RECONCILED)
            found.members_joined += joined
            found.members_left += left

    # --- Official Account -----------------------------------------------------------------------

    async def _followers(self) -> None:
        listed: set[str] = set()
        read = 0
        async for page in self.lister.follower_pages():
            listed.update(page.openids)
            new = await self._unknown(page.openids)
            for i in range(0, len(new), FOLLOWERS_PER_BATCH):
                infos = await self.lister.follower_infos(new[i : i + FOLLOWERS_PER_BATCH])
                await self._tx(self._follower_batch, infos)
            read += len(page.openids)
            self._progress("followers", read)
        await self._unfollows(listed)

    async def _unknown(self, openids: list[str]) -> list[str]:
        """The openids not stored as followers."""
        known: set[str] = set()
        async with self.services.sessions() as session:
            for i in range(0, len(openids), LOST_BATCH):
                chunk = openids[i : i + LOST_BATCH]
                found = await session.scalars(
                    select(Customer.openid).where(Customer.openid.in_(chunk), Customer.mp_follower)
                )
                known.update(o for o in found.all() if o)
        return [o for o in openids if o not in known]

    async def _follower_batch(self, ctx: Context, found: Found, infos: list[dict[str, Any]]) -> None:
        for info in infos:
            at = at_of(info.get("subscribe_time")) or ctx.now()
            if info.get("subscribe") != 1 or not info.get("openid") or at >= self.cutoff:
                continue
            openid = str(info["openid"])
            customer = await ensure_customer(ctx, "openid", openid)
            if text_of(info.get("unionid")):
                customer = await link_unionid(ctx, customer, str(info["unionid"]))
            followed = await ctx.session.execute(
                update(Customer)
                .where(Customer.id == customer.id, Customer.mp_follower.is_(False))
                .values(mp_follower=True, updated_at=ctx.now())
                .execution_options(synchronize_session=False)
            )
            if not followed.rowcount:  # type: ignore[attr-defined]
                continue  # the follow callback got here first
            await ctx.session.refresh(customer)
            key = text_of(info.get("qr_scene_str")) or (str(info["qr_scene"]) if info.get("qr_scene") else None)
            arrival, late = arrival_for(ctx.content, key, Platform.MP), self._late(at)
            action = RECONCILED if late else IMPORTED
            await record_touch(ctx, customer, arrival, raw_key=key, platform=Platform.MP, action=action, at=at)
            if not late:
                found.preexisting += 1
                continue
            await mark_mp_tags(ctx, openid, await tag_locally(ctx, customer, arrival.channel))
            await ctx.emit(ArrivalDiscovered(customer.id, arrival.code, Platform.MP.value, ctx.now()))
            found.followers_new += 1

    async def _unfollows(self, listed: set[str]) -> None:
        """Followers here whom the complete listing did not show (and who did not follow just now)."""
        recent = select(Touch.id).where(
            Touch.customer_id == Customer.id, Touch.platform == Platform.MP.value, Touch.occurred_at >= self.cutoff
        )
        async with self.services.sessions() as session:
            rows = (
                await session.execute(
                    select(Customer.id, Customer.openid).where(
                        Customer.mp_follower, Customer.openid.is_not(None), ~recent.exists()
                    )
                )
            ).all()
        gone = [(c, str(o)) for c, o in rows if o not in listed]
        for i in range(0, len(gone), LOST_BATCH):
            await self._tx(self._unfollow, gone[i : i + LOST_BATCH])

    async def _unfollow(self, ctx: Context, found: Found, pairs: list[tuple[int, str]]) -> None:
        for customer_id, openid in pairs:
            ended = await ctx.session.execute(
                update(Customer)
                .where(Customer.id == customer_id, Customer.mp_follower.is_(True))
                .values(mp_follower=False, updated_at=ctx.now())
                .execution_options(synchronize_session=False)
            )
            if not ended.rowcount:  # type: ignore[attr-defined]
                continue
            code = await ctx.session.scalar(
                select(Touch.channel_code)
                .where(Touch.customer_id == customer_id, Touch.platform == Platform.MP.value)
                .order_by(Touch.occurred_at.desc(), Touch.id.desc())
                .limit(1)
            )
            ctx.session.add(
                Loss(
                    customer_id=customer_id,
                    channel_code=code,
                    kind="unfollowed",
                    occurred_at=ctx.now(),
                    receipt_id=None,
                )
            )
            found.followers_lost += 1
            await ctx.emit(MpUnfollowed(customer_id, openid, ctx.now()))
            await ctx.emit(CustomerLost(customer_id, code, "unfollowed", ctx.now()))
