"""``siyu-bot reconcile`` after a simulated 2-hour outage, on SQLite and PostgreSQL: the simulator adds and
deletes customers, group members, tags and followers while no callback reaches the bot; reconciliation
records every difference once, welcomes nobody, enrols late arrivals in the drips that allow late entry,
and a second run changes nothing. The nightly job runs when the local hour passes."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer
from bot.rig import Rig
from bot.simulator.models import GroupMember as SimMember
from handlers import features
from handlers.growth.reconcile import Found
from handlers.growth.reconcile_runs import history_command, reconcile_command, reconcile_once
from handlers.growth.reconcile_tables import ReconcileRun
from handlers.growth.stats import channel_stats
from handlers.growth.tables import CustomerTag, GroupChat, GroupMember, Loss, Touch, WeComRelation, Welcome
from handlers.sop.tables import DripEnrolment
from tests.support.apps import drain, rows, start_rig
from tests.support.settings import SHIPPED_CONTENT, make_settings

CHAT = "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"  # a group_fans chat in content/channels.toml


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=5)
    yield rig
    await rig.close()


async def customer(rig: Rig, **where: str) -> Customer:
    [found] = await rows(rig, Customer, *(getattr(Customer, k) == v for k, v in where.items()))
    return found


async def before_the_outage(rig: Rig, clock: FrozenClock) -> None:
    """Callbacks arrive: two friends, a group with one of them, a follower; then a baseline run."""
    await rig.sim.add_friend("lulu", "wmA", state="pkgcard")
    await rig.sim.add_friend("lulu", "wmB", state="pkgcard")
    await rig.sim.create_group("lulu", "老客群", chat_id=CHAT)
    await rig.sim.join_group(CHAT, ["wmA"], join_state="group_fans")
    await rig.sim.follow("o1")
    await drain(rig, clock)
    await reconcile_once(rig.services, "command")  # the seeded groups of other channels, once
    await drain(rig, clock)


def during_the_outage(rig: Rig, vip: str) -> None:
    """Straight into the simulated platform: no callback is sent (as if the bot were down)."""
    s = rig.state
    s.add_contact("lulu", "wmNEW", state="pkgcard")  # arrived while we were down
    s.contacts["wmB"].follow["lulu"].active = False  # deleted while we were down
    s.contacts["wmA"].follow["lulu"].tag_ids.append(vip)  # tagged in the console
    group = s.groups[CHAT]
    del group.members["wmA"]
    group.members["wmNEW"] = SimMember("wmNEW", 2, s.ts(), 3, state="group_fans")
    s.bump_member_version(group)
    s.followers["o1"].subscribed = False
    new = s.add_follower("oNEW")
    new.subscribe_scene, new.qr_scene_str = "ADD_SCENE_QR_CODE", "poster_618"


async def test_an_outage_is_reconciled_once_without_welcomes(rig: Rig, clock: FrozenClock) -> None:
    vip = rig.state.add_corp_tag("等级", "VIP").id
    await before_the_outage(rig, clock)
    welcomes_before = len(rig.state.calls_to("externalcontact/send_welcome_msg"))
    clock.advance(timedelta(hours=1))
    during_the_outage(rig, vip)
    clock.advance(timedelta(hours=1))
    discovered_at = clock.now()

    found = await reconcile_once(rig.services, "command")
    await drain(rig, clock)

    assert found == Found(
        customers_new=1, customers_lost=1, members_joined=1, members_left=1, tags_changed=1, followers_new=1,
        followers_lost=1,
    )  # fmt: skip
    new = await customer(rig, external_userid="wmNEW")
    [touch] = await rows(rig, Touch, Touch.customer_id == new.id, Touch.platform == "wecom_friend")
    assert (touch.action, touch.channel_code, touch.occurred_at) == (
        "reconciled",
        "pkgcard",
        discovered_at - timedelta(hours=1),
    )
    assert new.first_channel == "pkgcard" and new.wecom_friend
    async with rig.services.sessions() as session:
        stats = await channel_stats(session, clock.now())
    assert stats["pkgcard"].reconciled == 1 and stats["pkgcard"].adds == 3  # wmA, wmB by callback; wmNEW late
    # nobody welcomed: no welcome call, no welcome row for the late arrivals
    assert len(rig.state.calls_to("externalcontact/send_welcome_msg")) == welcomes_before
    follower = await customer(rig, openid="oNEW")
    assert await rows(rig, Welcome, Welcome.customer_id.in_([new.id, follower.id])) == []
    # late entry: pkgcard_followup allows it (counted from the discovery), mp_48h does not
    [enrolment] = await rows(rig, DripEnrolment, DripEnrolment.customer_id == new.id)
    assert (enrolment.drip_id, enrolment.anchor_at, enrolment.state) == ("pkgcard_followup", discovered_at, "active")
    assert await rows(rig, DripEnrolment, DripEnrolment.customer_id == follower.id) == []
    # the loss: the relationship ended, the customer-lost path stopped its drip
    lost = await customer(rig, external_userid="wmB")
    [loss] = await rows(rig, Loss, Loss.customer_id == lost.id)
    assert (loss.kind, loss.channel_code, loss.staff_userid) == ("friend_gone", "pkgcard", "lulu")
    assert not lost.wecom_friend
    [stopped] = await rows(rig, DripEnrolment, DripEnrolment.customer_id == lost.id)
    assert (stopped.state, stopped.stop_reason) == ("stopped", "deleted_friend")
    # group members, tags, followers
    members = await rows(rig, GroupMember, GroupMember.chat_id == CHAT)
    assert {(m.member_id, m.active) for m in members} == {("lulu", True), ("wmA", False), ("wmNEW", True)}
    wm_a = await customer(rig, external_userid="wmA")
    assert [t.source for t in await rows(rig, CustomerTag, CustomerTag.tag == "等级/VIP")] == ["reconciled"]
    assert [(x.kind, x.chat_id) for x in await rows(rig, Loss, Loss.customer_id == wm_a.id)] == [("left_group", CHAT)]
    assert follower.mp_follower and follower.first_channel == "mp_poster_618"
    o1 = await customer(rig, openid="o1")
    assert not o1.mp_follower
    assert [x.kind for x in await rows(rig, Loss, Loss.customer_id == o1.id)] == ["unfollowed"]
    [o1_drip] = await rows(rig, DripEnrolment, DripEnrolment.customer_id == o1.id, DripEnrolment.drip_id == "mp_48h")
    assert (o1_drip.state, o1_drip.stop_reason) == ("stopped", "unfollowed")

    # a second run changes nothing
    counts = [await _count(rig, m) for m in (Touch, Loss, DripEnrolment, CustomerTag, GroupMember, WeComRelation)]
    again = await reconcile_once(rig.services, "command")
    await drain(rig, clock)
    assert again == Found()
    assert [
        await _count(rig, m) for m in (Touch, Loss, DripEnrolment, CustomerTag, GroupMember, WeComRelation)
    ] == counts


async def test_before_siyu_bot_is_imported_and_a_console_tag_removal_is_followed(rig: Rig, clock: FrozenClock) -> None:
    """No callback stored yet: what the platform lists predates siyu-bot (recorded as imported, no drip)."""
    vip = rig.state.add_corp_tag("等级", "VIP").id
    rig.state.add_contact("lulu", "wmOLD", state="pkgcard").follow["lulu"].tag_ids.append(vip)
    clock.advance(timedelta(hours=1))
    first = await reconcile_once(rig.services, "command")
    assert first is not None and (first.customers_new, first.preexisting, first.tags_changed) == (0, 1, 1)
    old = await customer(rig, external_userid="wmOLD")
    assert [t.action for t in await rows(rig, Touch, Touch.customer_id == old.id)] == ["imported"]
    assert await rows(rig, DripEnrolment, DripEnrolment.customer_id == old.id) == []
    rig.state.contacts["wmOLD"].follow["lulu"].tag_ids.clear()
    clock.advance(timedelta(minutes=1))
    found = await reconcile_once(rig.services, "command")
    assert found is not None and found.tags_changed == 1
    assert await rows(rig, CustomerTag, CustomerTag.tag == "等级/VIP") == []


async def test_a_group_dismissed_while_down_is_closed(rig: Rig, clock: FrozenClock) -> None:
    await rig.sim.add_friend("lulu", "wmG", state="pkgcard")
    await rig.sim.create_group("lulu", "老客群", members=["wmG"], chat_id=CHAT)
    await drain(rig, clock)
    await reconcile_once(rig.services, "command")
    rig.state.groups[CHAT].dismissed = True
    clock.advance(timedelta(hours=2))
    found = await reconcile_once(rig.services, "command")
    assert found is not None and found.members_left == 2  # the customer and the owner
    [group] = await rows(rig, GroupChat, GroupChat.chat_id == CHAT)
    assert group.dismissed_at == clock.now()
    assert await rows(rig, GroupMember, GroupMember.chat_id == CHAT, GroupMember.active) == []
    assert await reconcile_once(rig.services, "command") == Found()


async def test_a_callback_racing_the_run_is_counted_once(rig: Rig, clock: FrozenClock) -> None:
    """The add callback arrives while reconcile reads: the relationship is recorded by one of them, the
    welcome goes out (the callback's code is fresh), reconciliation adds nothing for it."""
    clock.advance(timedelta(hours=1))
    added = asyncio.ensure_future(rig.sim.add_friend("lulu", "wmRACE", state="pkgcard"))
    found = await reconcile_once(rig.services, "command")
    await added
    await drain(rig, clock)
    assert found is not None and found.customers_new == 0  # too young: left to its callback
    race = await customer(rig, external_userid="wmRACE")
    assert [t.action for t in await rows(rig, Touch, Touch.customer_id == race.id)] == ["friend_added"]
    assert len(rig.state.calls_to("externalcontact/send_welcome_msg")) == 1
    clock.advance(timedelta(hours=1))
    assert await reconcile_once(rig.services, "command") == Found()


async def test_a_late_loss_callback_after_the_run_is_not_a_second_loss(rig: Rig, clock: FrozenClock) -> None:
    await rig.sim.add_friend("lulu", "wmGONE", state="pkgcard")
    await drain(rig, clock)
    rig.state.contacts["wmGONE"].follow["lulu"].active = False
    clock.advance(timedelta(hours=1))
    assert (await reconcile_once(rig.services, "command") or Found()).customers_lost == 1
    await rig.sim.delete_friend_by_customer("lulu", "wmGONE")  # WeChat's retry, after we came back
    await drain(rig, clock)
    gone = await customer(rig, external_userid="wmGONE")
    assert [x.kind for x in await rows(rig, Loss, Loss.customer_id == gone.id)] == ["friend_gone"]


async def test_the_nightly_run_happens_when_the_local_hour_passes(db_url: str, clock: FrozenClock) -> None:
    settings = make_settings(db_url, reconcile={"nightly": True, "nightly_at": "03:30"})
    clock.set(datetime(2026, 11, 23, 19, 0, tzinfo=UTC))  # 03:00 in Asia/Shanghai
    rig = await start_rig(settings, clock)
    try:
        await rig.sim.follow("oFIRST")  # siyu-bot is live: its first callback
        await drain(rig, clock)
        rig.state.add_contact("lulu", "wmNIGHT", state="pkgcard")
        clock.advance(timedelta(minutes=29))
        rig.services.wake()
        await asyncio.sleep(0.2)
        assert await rows(rig, ReconcileRun) == []  # not yet
        clock.advance(timedelta(minutes=2))
        rig.services.wake()
        for _ in range(100):
            runs = await rows(rig, ReconcileRun, ReconcileRun.state == "done")
            if runs:
                break
            await asyncio.sleep(0.05)
        [run] = runs
        assert (run.slot, run.trigger, run.customers_new) == ("nightly:2026-11-24", "nightly", 1)
        clock.advance(timedelta(hours=1))
        rig.services.wake()
        await asyncio.sleep(0.2)
        assert len(await rows(rig, ReconcileRun)) == 1  # once a night
    finally:
        await rig.close()


async def test_the_command_and_its_history(rig: Rig, clock: FrozenClock) -> None:
    await rig.sim.follow("oFIRST")
    await drain(rig, clock)
    rig.state.add_contact("lulu", "wmCLI", state="pkgcard")
    clock.advance(timedelta(hours=1))
    settings = rig.services.settings  # pointed at the rig's simulator
    out = io.StringIO()
    assert await reconcile_command(settings, features(), out) == 0
    assert "reconciled: 1 new, 0 lost" in out.getvalue()
    out = io.StringIO()
    assert await reconcile_command(settings, features(), out) == 0
    assert "(nothing changed)" in out.getvalue()
    out = io.StringIO()
    assert await history_command(settings, 10, out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "command" in lines[1] and "done" in lines[1]


async def _count(rig: Rig, model: type) -> int:
    return len(await rows(rig, model))


GROUP_DRIP = """

[[drips]]
id = "fans_late"
name = "福利群新人（补录也发）"
trigger = { on = "joined_group", channels = ["group_fans"] }
late_entry = true

[[drips.steps]]
id = "hello"
delay = "1h"
message = "drip_pkgcard_gift"
delivery = "app_to_owner"
category = "care"
"""


async def test_a_group_join_found_late_enters_the_group_drips_that_allow_it(
    db_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    content = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, content)
    with (content / "drips.toml").open("a", encoding="utf-8") as drips:
        drips.write(GROUP_DRIP)
    rig = await start_rig(make_settings(db_url, content_dir=str(content)), clock, rng=5)
    try:
        await rig.sim.create_group("lulu", "老客群", chat_id=CHAT)
        await drain(rig, clock)
        await reconcile_once(rig.services, "command")
        s = rig.state
        group = s.groups[CHAT]
        group.members["wmLATE"] = SimMember("wmLATE", 2, s.ts(), 3, state="group_fans")  # no callback sent
        s.bump_member_version(group)
        clock.advance(timedelta(hours=1))
        found = await reconcile_once(rig.services, "command")
        await drain(rig, clock)
        assert found.members_joined == 1
        late = await customer(rig, external_userid="wmLATE")
        [enrolment] = await rows(rig, DripEnrolment, DripEnrolment.customer_id == late.id)
        assert (enrolment.drip_id, enrolment.anchor_at) == ("fans_late", clock.now())
    finally:
        await rig.close()
