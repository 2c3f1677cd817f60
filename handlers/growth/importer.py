"""``siyu-bot import``: day one on an account that already has customers, groups and followers.

Reads the platform's lists (docs/platform.md#customer-lists) and records what it finds as facts:

- every follow user's customers (``batch/get_by_user``): the customer, the relationship with its
  ``createtime``, remark-free tags (corp tags as ``group/name``) and the channel of its ``state`` when
  the code is known (else unattributed);
- customer groups (``groupchat/list`` + ``groupchat/get``) with their members (``join_scene``, ``state``,
  ``invitor``);
- Official Account followers (``user/get`` + ``user/info/batchget``) with ``unionid``, tags,
  ``subscribe_scene`` and the QR scene → channel.

Identity is linked by ``unionid`` (:mod:`handlers.customers.identity`). An imported relationship is one
touch with action ``imported`` (its ``occurred_at`` the platform's time; the customer's first touch when
it had none); ``stats channels`` counts these apart from the adds. Nothing is announced: the import's
transactions run without a running app, so no domain event is heard, no welcome, drip or referral reward
follows, and no platform call is queued.

Each page is one transaction together with its checkpoint (``import_checkpoints``): a crash resumes after
the last stored page; a cursor the platform no longer knows restarts that list (every write is
idempotent). A completed import deletes its checkpoints, so the next one reads everything again and
changes nothing that is already known. Reads go through the platform clients, whose token handling and
backoff on rate-limit errcodes apply.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TextIO, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content, Platform
from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from bot.platform import MpClient, PlatformError, WeComClient
from handlers.customers.events import CustomerCreated
from handlers.customers.identity import ensure_customer, find_customer, link_unionid
from handlers.growth.attribution import Arrival, arrival_for
from handlers.growth.import_bulk import CustomerCache, insert_new
from handlers.growth.lister import CUSTOMERS_PER_PAGE, FOLLOWERS_PER_BATCH, Lister, at_of, text_of
from handlers.growth.stats import IMPORTED
from handlers.growth.tables import CustomerTag, GroupChat, GroupMember, ImportCheckpoint, Touch, WeComRelation

T = TypeVar("T")


@dataclass
class Tally:
    customers_new: int = 0
    customers_known: int = 0
    relations_new: int = 0
    groups_new: int = 0
    groups_known: int = 0
    members_new: int = 0
    followers_new: int = 0
    followers_known: int = 0
    linked: int = 0  # customers whose unionid was recorded or who were merged by it
    unattributed: int = 0  # imported relationships without a known channel code
    tags_new: int = 0
    corp_tags: int = 0

    @property
    def changed(self) -> int:
        return sum(int(getattr(self, f.name)) for f in fields(self) if f.name.endswith("_new")) + self.linked


async def _clear_checkpoints(ctx: Context) -> None:
    await ctx.session.execute(delete(ImportCheckpoint))


class Importer:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        content: Content,
        clock: Clock,
        out: TextIO,
        *,
        wecom: WeComClient | None,
        mp: MpClient | None,
    ) -> None:
        self.settings, self.sessions, self.content, self.clock, self.out = settings, sessions, content, clock, out
        self.wecom, self.mp = wecom, mp
        self.lister = Lister(wecom, mp, CUSTOMERS_PER_PAGE)
        self.tally = Tally()
        self.rng = random.Random()
        self.corp_tags: dict[str, str] = {}
        self.mp_tags: dict[int, str] = {}
        self.cache = CustomerCache()  # the current page's customers (one transaction)
        self.fresh: set[int] = set()  # customers created in bulk this page, counted new already

    async def run(self) -> Tally:
        if self.wecom is not None:
            await self._corp_tags()
            await self._customers()
            await self._groups()
        if self.mp is not None:
            await self._followers()
        await self._tx(_clear_checkpoints)  # complete: start over next time
        return self.tally

    # --- transactions and checkpoints ---------------------------------------------------------

    async def _tx(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(ctx, *args)`` in one transaction."""
        self.cache.clear()
        self.fresh.clear()
        try:
            async with self.sessions() as session, session.begin():
                # services=None: no running app, so nothing hears the import (docstring)
                ctx = Context(session, self.settings, self.clock, self.rng, None, None, scope=IMPORTED)
                return await fn(ctx, *args)
        finally:
            self.cache.clear()

    async def _position(self, name: str) -> str | None:
        """The stored position of list ``name``: ``None`` when it is done, ``""`` when not started."""
        async with self.sessions() as session:
            row = await session.get(ImportCheckpoint, name)
        if row is None:
            return ""
        return None if row.done else row.position

    async def _save(self, ctx: Context, name: str, position: str, done: bool = False) -> None:
        values = {"list_name": name, "position": position, "done": done, "updated_at": ctx.now()}
        if not await insert_ignore(ctx.session, ImportCheckpoint, values, ["list_name"]):
            row = await ctx.session.get(ImportCheckpoint, name)
            assert row is not None
            row.position, row.done, row.updated_at = position, done, ctx.now()

    def _progress(
        self, what: str, done: int, started: float, total: int | None = None, share: float | None = None
    ) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done / elapsed
        if share is None and total:
            share = done / total
        eta = f"{(elapsed / share - elapsed):.0f} s" if share and share > 0 else "?"
        of = f"/{total}" if total else ""
        print(f"{what}: {done}{of} read, {rate:.0f}/s, ETA {eta}", file=self.out, flush=True)

    # --- WeCom --------------------------------------------------------------------------------

    async def _corp_tags(self) -> None:
        self.corp_tags = await self.lister.corp_tags()
        self.tally.corp_tags = len(self.corp_tags)

    async def _customers(self) -> None:
        position = await self._position("wecom_customers")
        if position is None:
            return
        read, started = 0, time.monotonic()
        async for page in self.lister.customer_pages(position):
            await self._tx(self._store_customers, page.rows, page.position, page.done)
            read += len(page.rows)
            self._progress("customers", read, started, share=page.share)

    async def _store_customers(self, ctx: Context, rows: list[dict[str, Any]], position: str, done: bool) -> None:
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for row in rows:
            contact, follow = row.get("external_contact") or {}, row.get("follow_info") or {}
            if contact.get("external_userid") and follow.get("userid"):
                found.append((contact, follow))
        await self._prepare(ctx, "external_userid", [(str(c["external_userid"]), c) for c, _ in found], True)
        relations: list[dict[str, Any]] = []
        facts: list[tuple[Customer, str, str | None, Arrival, datetime, list[str]]] = []
        for contact, follow in found:
            customer = await self._customer(ctx, "external_userid", str(contact["external_userid"]), contact)
            customer.wecom_friend = True
            staff, state = str(follow["userid"]), text_of(follow.get("state"))
            arrival = arrival_for(self.content, state, Platform.WECOM_FRIEND)
            at = at_of(follow.get("createtime")) or ctx.now()
            relations.append({
                "customer_id": customer.id, "staff_userid": staff, "channel_code": arrival.code, "added_at": at,
                "removed_at": None, "active": True,
            })  # fmt: skip
            refs = [self.corp_tags.get(str(t), "") for t in follow.get("tag_id") or ()]
            facts.append((customer, staff, state, arrival, at, refs))
        keys = ["customer_id", "staff_userid"]
        new = set(await insert_new(ctx.session, WeComRelation, relations, keys, keys))
        tags: list[dict[str, Any]] = []
        for customer, staff, state, arrival, at, refs in facts:
            if (customer.id, staff) in new:
                new.discard((customer.id, staff))  # the same pair twice in a page: one touch
                self._touch(ctx, customer, arrival, state, Platform.WECOM_FRIEND, at, staff_userid=staff)
            tags += self._tag_rows(ctx, customer, refs)
        await self._insert_tags(ctx, tags)
        await self._save(ctx, "wecom_customers", position, done)

    async def _groups(self) -> None:
        cursor = await self._position("wecom_groups")
        if cursor is None:
            return
        read, started = 0, time.monotonic()
        async for page in self.lister.group_pages(cursor):
            await self._tx(self._store_groups, page.rows, page.position, page.done)
            read += len(page.rows)
            self._progress("groups", read, started)

    async def _store_groups(self, ctx: Context, chats: list[dict[str, Any]], cursor: str, done: bool) -> None:
        members = [
            (str(chat["chat_id"]), m)
            for chat in chats
            for m in chat.get("member_list") or ()
            if isinstance(m, dict) and m.get("userid")
        ]
        externals = [(str(m["userid"]), m) for _, m in members if m.get("type") == 2]
        await self._prepare(ctx, "external_userid", externals, False)
        for chat in chats:
            group = {
                "chat_id": str(chat["chat_id"]), "name": str(chat.get("name") or "")[:128],
                "owner": text_of(chat.get("owner")), "notice": text_of(chat.get("notice")),
                "member_version": text_of(chat.get("member_version")), "created_at": at_of(chat.get("create_time")),
                "updated_at": ctx.now(),
            }  # fmt: skip
            if await insert_ignore(ctx.session, GroupChat, group, ["chat_id"]):
                self.tally.groups_new += 1
            else:
                self.tally.groups_known += 1
        rows: list[dict[str, Any]] = []
        facts: list[tuple[str, str, Customer | None, Arrival, str | None, datetime]] = []
        for chat_id, member in members:
            member_id, state = str(member["userid"]), text_of(member.get("state"))
            customer = None
            if member.get("type") == 2:
                customer = await self._customer(ctx, "external_userid", member_id, member)
            arrival = arrival_for(self.content, state, Platform.WECOM_GROUP)
            at = at_of(member.get("join_time")) or ctx.now()
            invitor = member.get("invitor")
            rows.append({
                "chat_id": chat_id, "member_id": member_id, "member_type": int(member.get("type") or 0),
                "customer_id": customer.id if customer else None, "unionid": text_of(member.get("unionid")),
                "state": state, "channel_code": arrival.code if customer else None,
                "join_scene": member.get("join_scene") if isinstance(member.get("join_scene"), int) else None,
                "invitor": text_of(invitor.get("userid")) if isinstance(invitor, dict) else None,
                "joined_at": at, "left_at": None, "active": True,
            })  # fmt: skip
            facts.append((chat_id, member_id, customer, arrival, state, at))
        keys = ["chat_id", "member_id"]
        new = set(await insert_new(ctx.session, GroupMember, rows, keys, keys))
        self.tally.members_new += len(new)
        for chat_id, member_id, customer, arrival, state, at in facts:
            if (chat_id, member_id) in new:
                new.discard((chat_id, member_id))
                if customer is not None:
                    self._touch(ctx, customer, arrival, state, Platform.WECOM_GROUP, at, chat_id=chat_id)
        await self._save(ctx, "wecom_groups", cursor, done)

    # --- Official Account -----------------------------------------------------------------------

    async def _followers(self) -> None:
        position = await self._position("mp_followers")
        if position is None:
            return
        self.mp_tags = await self.lister.mp_tags()
        start, _, offset_text = position.partition("|")
        offset, read, started = int(offset_text or 0), 0, time.monotonic()
        async for page in self.lister.follower_pages(start):
            if page.start != start:  # the list was read again from its start
                start, offset = page.start, 0
            if not page.openids:
                await self._tx(self._save, "mp_followers", "", True)
            while offset < len(page.openids):
                batch = page.openids[offset : offset + FOLLOWERS_PER_BATCH]
                infos = await self.lister.follower_infos(batch)
                offset += len(batch)
                last = offset >= len(page.openids)
                position = f"{page.following}|0" if last else f"{start}|{offset}"
                await self._tx(self._store_followers, infos, position, last and not page.following)
                read += len(batch)
                self._progress("followers", read, started, page.total)
            start, offset = page.following, 0

    async def _store_followers(self, ctx: Context, infos: list[dict[str, Any]], position: str, done: bool) -> None:
        for info in infos:
            if info.get("subscribe") != 1 or not info.get("openid"):
                continue
            customer = await self._customer(ctx, "openid", str(info["openid"]), info)
            new = not customer.mp_follower
            customer.mp_follower = True
            key = text_of(info.get("qr_scene_str")) or (str(info["qr_scene"]) if info.get("qr_scene") else None)
            arrival = arrival_for(self.content, key, Platform.MP)
            if new:
                self.tally.followers_new += 1
                self._touch(ctx, customer, arrival, key, Platform.MP, at_of(info.get("subscribe_time")) or ctx.now())
            else:
                self.tally.followers_known += 1
            await self._tags(ctx, customer, [self.mp_tags.get(t, "") for t in info.get("tagid_list") or ()])
        await self._save(ctx, "mp_followers", position, done)

    # --- shared -----------------------------------------------------------------------------------

    async def _prepare(
        self, ctx: Context, column: str, entries: list[tuple[str, dict[str, Any]]], friend: bool
    ) -> None:
        """Load the page's customers (by ``column`` and by unionid) and create, in one statement, those
        known by neither: what :meth:`_customer` would do row by row (the new ones counted here)."""
        await self.cache.load(ctx.session, column, [value for value, _ in entries])
        await self.cache.load(ctx.session, "unionid", [text_of(data.get("unionid")) for _, data in entries])
        fresh: dict[str, dict[str, Any]] = {}
        unionids: set[str] = set()
        now = ctx.now()
        for value, data in entries:
            unionid = text_of(data.get("unionid"))
            if value in fresh or not self._absent(column, value):
                continue
            if unionid and (unionid in unionids or not self._absent("unionid", unionid)):
                continue  # joins another door's customer: row by row
            if unionid:
                unionids.add(unionid)
            name = str(data["name"])[:128] if data.get("name") else None
            fresh[value] = {
                column: value, "unionid": unionid, "name": name, "wecom_friend": friend, "created_at": now,
                "updated_at": now,
            }  # fmt: skip
        made = await insert_new(ctx.session, Customer, list(fresh.values()), [column], ["id", column, "unionid"])
        if not made:
            return
        for customer in await ctx.session.scalars(select(Customer).where(Customer.id.in_([m[0] for m in made]))):
            self.cache.put(customer)
            self.fresh.add(customer.id)
        for customer_id, value, unionid in made:
            self.tally.customers_new += 1
            self.tally.linked += 1 if unionid else 0
            await ctx.emit(CustomerCreated(customer_id, column, value))

    def _absent(self, column: str, value: str) -> bool:
        return self.cache.known(column, value) and self.cache.get(column, value) is None

    async def _find(self, ctx: Context, column: str, value: str) -> Customer | None:
        if self.cache.known(column, value):
            return self.cache.get(column, value)
        found = await find_customer(ctx, column, value)
        if found is not None:
            self.cache.put(found)
        return found

    async def _customer(self, ctx: Context, column: str, value: str, data: dict[str, Any]) -> Customer:
        unionid = text_of(data.get("unionid"))
        customer = await self._find(ctx, column, value)
        if customer is not None and customer.id in self.fresh:
            self.fresh.discard(customer.id)  # made by _prepare for this row, and counted there
            return customer
        if customer is None and unionid:  # known through another door: this one joins that customer
            customer = await self._find(ctx, "unionid", unionid)
            if customer is not None and getattr(customer, column) is None:
                setattr(customer, column, value)
                self.cache.put(customer)
                self.tally.linked += 1
            else:
                customer = None
        if customer is None:
            customer = await ensure_customer(ctx, column, value)
            self.tally.customers_new += 1
        else:
            self.tally.customers_known += 1
        if unionid and customer.unionid != unionid:
            merge = not self._absent("unionid", unionid)
            customer = await link_unionid(ctx, customer, unionid)
            if merge:
                self.cache.clear()  # a merged-away customer may be held under its other identifiers
            self.tally.linked += 1
        self.cache.put(customer)
        if data.get("name") and not customer.name:
            customer.name = str(data["name"])[:128]
        return customer

    def _touch(
        self,
        ctx: Context,
        customer: Customer,
        arrival: Arrival,
        raw_key: str | None,
        platform: Platform,
        at: datetime,
        *,
        staff_userid: str | None = None,
        chat_id: str | None = None,
    ) -> None:
        """The imported relationship as one touch (``action = "imported"``, never an add in the stats)."""
        first = customer.first_touch_at is None
        ctx.session.add(
            Touch(
                customer_id=customer.id, channel_code=arrival.code, raw_key=raw_key, platform=platform.value,
                action=IMPORTED, staff_userid=staff_userid, chat_id=chat_id, first=first, occurred_at=at,
                receipt_id=None,
            )
        )  # fmt: skip
        if first:
            customer.first_touch_at, customer.first_channel = at, arrival.code
        self.tally.relations_new += 1
        if arrival.code is None:
            self.tally.unattributed += 1

    async def _tags(self, ctx: Context, customer: Customer, refs: list[str]) -> None:
        await self._insert_tags(ctx, self._tag_rows(ctx, customer, refs))

    def _tag_rows(self, ctx: Context, customer: Customer, refs: list[str]) -> list[dict[str, Any]]:
        return [
            {"customer_id": customer.id, "tag": ref[:96], "source": IMPORTED, "created_at": ctx.now()}
            for ref in dict.fromkeys(r for r in refs if r)
        ]

    async def _insert_tags(self, ctx: Context, rows: list[dict[str, Any]]) -> None:
        keys = ["customer_id", "tag"]
        self.tally.tags_new += len(await insert_new(ctx.session, CustomerTag, rows, keys, keys))


def summary(t: Tally) -> str:
    lines = [
        f"customers: {t.customers_new} new, {t.customers_known} already known",
        f"relationships: {t.relations_new} imported ({t.unattributed} unattributed)",
        f"groups: {t.groups_new} new, {t.groups_known} already known; {t.members_new} new members",
        f"followers: {t.followers_new} new, {t.followers_known} already known",
        f"linked identities (unionid): {t.linked}",
        f"tags: {t.tags_new} new on customers, {t.corp_tags} corp tags",
    ]
    if not t.changed:
        lines.append("nothing changed: everything was already imported")
    return "\n".join(lines)


async def unfinished(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """The lists an interrupted import will resume (``import`` prints it at the start)."""
    async with sessions() as session:
        return list((await session.scalars(select(ImportCheckpoint.list_name).order_by("list_name"))).all())


async def import_command(settings: Settings, out: TextIO, *, clock: Clock | None = None) -> int:
    """``siyu-bot import``: 0 when complete, 1 when a platform call failed (run it again to resume), 2
    when neither WeCom nor the Official Account is configured."""
    import aiohttp

    from bot.clock import SystemClock
    from bot.db.engine import make_engine, sessionmaker
    from bot.platform import DbTokenStore
    from handlers.content import live_content

    clock = clock or SystemClock()
    w, m = settings.wecom, settings.official_account
    if not (w.corp_id and w.secret) and not (m.app_id and m.app_secret):
        print("error: neither [wecom] corp_id/secret nor [official_account] app_id/app_secret is set", file=out)
        return 2
    content = await live_content(settings)
    engine = make_engine(settings.database)
    try:
        sessions = sessionmaker(engine)
        resuming = await unfinished(sessions)
        if resuming:
            print(f"resuming an interrupted import ({', '.join(resuming)})", file=out)
        async with aiohttp.ClientSession() as http:
            tokens = DbTokenStore(sessions, clock)
            wecom = WeComClient(http, w, tokens, clock) if w.corp_id and w.secret else None
            mp = MpClient(http, m, tokens, clock) if m.app_id and m.app_secret else None
            importer = Importer(settings, sessions, content, clock, out, wecom=wecom, mp=mp)
            try:
                tally = await importer.run()
            except PlatformError as exc:
                print(summary(importer.tally), file=out)
                print(f"error: {exc}; run `siyu-bot import` again to resume", file=out)
                return 1
    finally:
        await engine.dispose()
    print(summary(tally), file=out)
    return 0
