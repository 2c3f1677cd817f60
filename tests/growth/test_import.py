"""``siyu-bot import`` against the simulator, on SQLite and PostgreSQL: an empty database, one that holds
part of the data, a crash and its resume, a second run that changes nothing, group posts afterwards."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.engine import make_engine, sessionmaker
from bot.db.models import Customer, OutboxCall
from bot.platform import PlatformError, WeComClient
from bot.simulator import SimAccounts, SimState, start_simulator
from handlers.growth import importer
from handlers.growth.importer import import_command
from handlers.growth.stats import channel_stats
from handlers.growth.tables import CustomerTag, GroupMember, ImportCheckpoint, Touch, WeComRelation, Welcome
from handlers.sop.group_sop import GroupSop
from handlers.sop.group_sop_targets import known_groups
from tests.support.apps import drain, start_rig
from tests.support.settings import make_settings


@dataclass
class World:
    settings: Settings
    state: SimState


def seed(state: SimState) -> None:
    """Two members, six customers (one shared), a group, three followers; wm1 and o1 are one person."""
    vip = state.add_corp_tag("等级", "VIP")
    state.add_contact("alice", "wm0", state="pkgcard", name="零")
    state.add_contact("alice", "wm1", state="live_0611", unionid="un1")
    state.add_contact("alice", "wm2", state="no-such-code")
    state.add_contact("alice", "wm3")
    state.add_contact("bob", "wm4", state="store_sh01")
    state.add_contact("bob", "wm0")  # wm0 is a customer of both
    state.contacts["wm2"].follow["alice"].tag_ids = [vip.id]
    group = state.add_group("alice", "老客群", chat_id="wrOld")
    group.members["wm1"] = state_member("wm1", 2, 3, "group_fans", "alice", "un1")
    group.members["wm9"] = state_member("wm9", 2, 1, None, None, None)
    state.add_group("bob", "二群", chat_id="wrTwo")
    follower = state.add_follower("o1", unionid="un1")
    follower.subscribe_scene, follower.qr_scene_str = "ADD_SCENE_QR_CODE", "poster_618"
    state.add_follower("o2")
    state.add_follower("o3").subscribed = False


def state_member(uid: str, type_: int, scene: int, st: str | None, invitor: str | None, union: str | None) -> Any:
    from bot.simulator.models import GroupMember as SimMember

    return SimMember(uid, type_, 1_700_000_000, scene, invitor=invitor, state=st, unionid=union)


@pytest.fixture
async def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setattr(importer, "CUSTOMERS_PER_PAGE", 2)  # several pages, so a crash can fall between them
    base = make_settings(db_url)
    state = SimState(accounts=SimAccounts.from_settings(base), seed=3)
    seed(state)
    sim = await start_simulator(state, "127.0.0.1", 0)
    settings = make_settings(
        db_url,
        wecom={"api_base_url": sim.wecom_api_base},
        official_account={"api_base_url": sim.mp_api_base},
    )
    try:
        yield World(settings, state)
    finally:
        await sim.close()


async def run(world: World) -> tuple[int, str]:
    out = io.StringIO()
    code = await import_command(world.settings, out)
    return code, out.getvalue()


async def count(world: World, query: Any) -> int:
    engine = make_engine(world.settings.database)
    try:
        async with sessionmaker(engine)() as session:
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


async def facts(world: World) -> dict[str, Any]:
    engine = make_engine(world.settings.database)
    try:
        async with sessionmaker(engine)() as session:
            customers = (await session.scalars(select(Customer).order_by(Customer.id))).all()
            return {
                "customers": sorted(
                    (
                        (c.external_userid, c.openid, c.unionid, c.first_channel, c.wecom_friend, c.mp_follower)
                        for c in customers
                    ),
                    key=str,
                ),
                "touches": sorted(
                    (
                        (t.platform, t.action, t.channel_code, t.staff_userid, t.chat_id)
                        for t in (await session.scalars(select(Touch))).all()
                    ),
                    key=str,
                ),
                "relations": await session.scalar(select(func.count()).select_from(WeComRelation)),
                "members": sorted(
                    (
                        (m.chat_id, m.member_id, m.join_scene, m.state, m.invitor, m.channel_code)
                        for m in (await session.scalars(select(GroupMember))).all()
                    ),
                    key=str,
                ),
                "tags": sorted((t.tag, t.source) for t in (await session.scalars(select(CustomerTag))).all()),
                "groups": [g.chat_id for g in await known_groups(session)],
            }
    finally:
        await engine.dispose()


async def test_an_import_into_an_empty_database_then_a_second_changes_nothing(world: World) -> None:
    code, out = await run(world)
    assert code == 0, out
    assert "customers: 7 new" in out  # wm0-wm4, wm9 (a group member only), o2; o1 is wm1 by unionid
    assert "followers: 2 new" in out and "linked identities (unionid): 2" in out
    assert "ETA" in out
    got = await facts(world)
    assert ("wm1", "o1", "un1", "live_0611", True, True) in got["customers"]
    assert ("wm2", None, None, None, True, False) in got["customers"]  # an unknown code: unattributed
    assert got["relations"] == 6
    assert all(action == "imported" for _, action, *_ in got["touches"])
    assert ("wecom_group", "imported", "group_fans", None, "wrOld") in got["touches"]
    assert ("mp", "imported", "mp_poster_618", None, None) in got["touches"]
    assert ("wrOld", "wm1", 3, "group_fans", "alice", "group_fans") in got["members"]
    assert got["tags"] == [("等级/VIP", "imported")]
    assert got["groups"] == ["wrOld", "wrTwo"]  # a group post (SOP targets) now reaches them
    # nothing was welcomed, queued or announced; stats show the import apart from the adds
    assert await count(world, select(func.count()).select_from(OutboxCall)) == 0
    assert await count(world, select(func.count()).select_from(Welcome)) == 0
    assert await count(world, select(func.count()).select_from(ImportCheckpoint)) == 0
    engine = make_engine(world.settings.database)
    async with sessionmaker(engine)() as session:
        stats = await channel_stats(session, world.state.now())
    await engine.dispose()
    assert stats["pkgcard"].imported == 1 and stats["pkgcard"].adds == 0

    code, again = await run(world)
    assert code == 0 and "nothing changed: everything was already imported" in again
    assert await facts(world) == got


async def test_an_import_into_a_database_holding_part_of_the_data(world: World) -> None:
    from bot.db.upsert import insert_ignore

    engine = make_engine(world.settings.database)
    now = world.state.now()
    async with sessionmaker(engine)() as session, session.begin():  # wm0 arrived through a callback already
        await insert_ignore(session, Customer, {"external_userid": "wm0", "created_at": now, "updated_at": now,
                                                "wecom_friend": True, "first_channel": "pkgcard",
                                                "first_touch_at": now}, ["external_userid"])  # fmt: skip
        cid = await session.scalar(select(Customer.id).where(Customer.external_userid == "wm0"))
        session.add(WeComRelation(customer_id=cid, staff_userid="alice", channel_code="pkgcard", added_at=now))
        session.add(Touch(customer_id=cid, channel_code="pkgcard", platform="wecom_friend", action="friend_added",
                          first=True, occurred_at=now))  # fmt: skip
    await engine.dispose()
    code, out = await run(world)
    assert code == 0 and "customers: 6 new" in out
    got = await facts(world)
    assert got["relations"] == 6
    assert sum(1 for t in got["touches"] if t[1] == "friend_added") == 1  # the callback's touch is kept
    assert sum(1 for t in got["touches"] if t[1] == "imported" and t[3] == "alice" and t[2] == "pkgcard") == 0


async def test_a_crash_mid_import_resumes_after_the_last_stored_page(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = WeComClient.batch_get_by_user
    calls: list[str] = []

    async def flaky(self: WeComClient, userids: Any, cursor: str = "", limit: int = 100) -> Any:
        calls.append(cursor)
        if len(calls) == 2:
            raise PlatformError("externalcontact/batch/get_by_user", 60011, "no privilege to access/modify contact")
        return await real(self, userids, cursor, limit)

    monkeypatch.setattr(WeComClient, "batch_get_by_user", flaky)
    code, out = await run(world)
    assert code == 1 and "run `siyu-bot import` again to resume" in out
    assert await count(world, select(func.count()).select_from(ImportCheckpoint)) == 1
    assert await count(world, select(func.count()).select_from(WeComRelation)) == 2  # the first page only

    code, out = await run(world)
    assert code == 0 and "resuming an interrupted import (wecom_customers)" in out
    assert calls[2] == calls[1] != ""  # it asked again for the page that failed, not from the start
    got = await facts(world)
    assert got["relations"] == 6 and len(got["customers"]) == 7
    assert sum(1 for t in got["touches"] if t[0] == "wecom_friend") == 6  # no page imported twice


async def test_a_group_post_reaches_groups_that_existed_before_the_bot(settings: Settings, clock: FrozenClock) -> None:
    """The day-one failure this import fixes: a weekly post found 0 targets among the account's groups."""
    rig = await start_rig(settings, clock)
    try:
        owner = next(iter(rig.state.staff))
        rig.state.add_group(owner, "山野小食福利群3群", chat_id="wrBefore")  # on the account before the bot
        rig.state.add_contact(owner, "wmOld", state="pkgcard")
        fire_at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # Friday 20:00 in Shanghai: fri_weekend_stock
        async with rig.services.sessions() as session:
            assert "wrBefore" not in [g.chat_id for g in await known_groups(session)]
        out = io.StringIO()
        assert await import_command(rig.services.settings, out, clock=clock) == 0, out.getvalue()
        clock.advance(fire_at - clock.now())
        before = len(rig.state.calls_to("externalcontact/add_msg_template"))
        await GroupSop(rig.services).fire("fri_weekend_stock", fire_at)
        await drain(rig, clock)
        tasks = rig.state.calls_to("externalcontact/add_msg_template")[before:]
        assert any("wrBefore" in (call.body or {}).get("chat_id_list", []) for call in tasks)
        assert not rig.state.calls_to("externalcontact/send_welcome_msg")  # imported: nobody welcomed
    finally:
        await rig.close()
