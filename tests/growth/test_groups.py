"""Customer groups through the simulator: join-way attribution, leaves, lost and out-of-order callbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer, OutboxCall
from bot.rig import Rig
from handlers.growth.tables import CustomerTag, GroupChat, GroupMember, Loss, Touch
from tests.growth.helpers import pretend_synced
from tests.support.apps import drain, rows, start_rig

CHAT = "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"  # one of group_fans' chat_ids in content/channels.toml
FANS_TAG = "渠道/粉丝福利群"


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=7)
    yield rig
    await rig.close()


@pytest.fixture
async def tag_ids(rig: Rig, clock: FrozenClock) -> dict[str, str]:
    return await pretend_synced(rig, clock, [FANS_TAG, "渠道/包裹卡", "福利/29元礼待领取"])


async def active_members(rig: Rig, chat_id: str = CHAT) -> set[str]:
    found = await rows(rig, GroupMember, GroupMember.chat_id == chat_id, GroupMember.active)
    return {m.member_id for m in found}


async def customer(rig: Rig, external_userid: str) -> Customer:
    [found] = await rows(rig, Customer, Customer.external_userid == external_userid)
    return found


async def new_group(rig: Rig, clock: FrozenClock) -> str:
    created = await rig.sim.create_group("lulu", "山野小食福利群1", chat_id=CHAT)
    assert created.delivery.ok
    await drain(rig, clock)
    return created.chat_id


async def test_join_through_a_join_way_code_attributes_and_tags(
    rig: Rig, clock: FrozenClock, tag_ids: dict[str, str]
) -> None:
    friend = await rig.sim.add_friend("lulu", "wmFRIEND", state="pkgcard", unionid="uFRIEND")
    await drain(rig, clock)
    chat_id = await new_group(rig, clock)
    joined_at = clock.now()
    delivery = await rig.sim.join_group(chat_id, [friend.external_userid, "wmSTRANGER"], join_state="group_fans")
    assert delivery.ok
    await drain(rig, clock)

    read = rig.state.last_call("externalcontact/groupchat/get")
    assert read.body == {"chat_id": chat_id, "need_name": 1}
    assert read.at >= joined_at + timedelta(seconds=2)  # eventually consistent: read after the settle delay
    assert await active_members(rig) == {"lulu", "wmFRIEND", "wmSTRANGER"}
    [member] = await rows(rig, GroupMember, GroupMember.member_id == "wmFRIEND")
    assert (member.channel_code, member.state, member.join_scene, member.member_type) == (
        "group_fans",
        "group_fans",
        3,
        2,
    )
    for ext in ("wmFRIEND", "wmSTRANGER"):
        c = await customer(rig, ext)
        [touch] = await rows(rig, Touch, Touch.customer_id == c.id, Touch.action == "group_joined")
        assert (touch.channel_code, touch.chat_id, touch.platform) == ("group_fans", chat_id, "wecom_group")
        tags = {t.tag for t in await rows(rig, CustomerTag, CustomerTag.customer_id == c.id)}
        assert FANS_TAG in tags
    stranger = await customer(rig, "wmSTRANGER")
    assert stranger.first_channel == "group_fans"  # a group join can be the first touch
    fans = tag_ids[FANS_TAG]
    marks = [c for c in rig.state.calls_to("externalcontact/mark_tag") if c.body and fans in c.body["add_tag"]]
    assert [m.body for m in marks] == [{"userid": "lulu", "external_userid": "wmFRIEND", "add_tag": [fans]}]
    assert marks[0].errcode == 0  # not the stranger: no staff member has them as a customer
    assert fans in rig.state.contacts["wmFRIEND"].follow["lulu"].tag_ids
    assert not await rows(rig, Customer, Customer.external_userid == "lulu")  # staff are not customers


async def test_leave_is_a_loss_for_the_channel_the_member_came_from(rig: Rig, clock: FrozenClock) -> None:
    chat_id = await new_group(rig, clock)
    await rig.sim.join_group(chat_id, ["wmFAN1"], join_state="group_fans")
    await drain(rig, clock)
    clock.advance(600)
    await rig.sim.leave_group(chat_id, ["wmFAN1"])
    await drain(rig, clock)

    assert await active_members(rig) == {"lulu"}
    [member] = await rows(rig, GroupMember, GroupMember.member_id == "wmFAN1")
    assert not member.active and member.left_at is not None
    [loss] = await rows(rig, Loss)
    assert (loss.kind, loss.channel_code, loss.chat_id) == ("left_group", "group_fans", chat_id)
    assert loss.customer_id == (await customer(rig, "wmFAN1")).id


async def test_a_lost_join_callback_is_caught_by_the_next_reread(rig: Rig, clock: FrozenClock) -> None:
    chat_id = await new_group(rig, clock)
    with rig.sim.withheld() as lost:
        await rig.sim.join_group(chat_id, ["wmLOST"], join_state="group_fans")
    assert len(lost) == 1  # never delivered
    await drain(rig, clock)
    assert await active_members(rig) == {"lulu"}

    clock.advance(3600)
    await rig.sim.update_group(chat_id, name="山野小食福利群（新）")  # an unrelated change_name callback
    await drain(rig, clock)
    assert await active_members(rig) == {"lulu", "wmLOST"}
    [member] = await rows(rig, GroupMember, GroupMember.member_id == "wmLOST")
    assert member.channel_code == "group_fans"
    [group] = await rows(rig, GroupChat, GroupChat.chat_id == chat_id)
    assert group.name == "山野小食福利群（新）"
    assert group.member_version == rig.state.groups[chat_id].member_version


async def test_out_of_order_callbacks_end_with_the_right_member_list(rig: Rig, clock: FrozenClock) -> None:
    chat_id = await new_group(rig, clock)
    await rig.sim.join_group(chat_id, ["wmA"], join_state="group_fans")
    await drain(rig, clock)
    with rig.sim.withheld() as held:
        clock.advance(5)
        await rig.sim.join_group(chat_id, ["wmB", "wmC"], join_state="group_fans")
        clock.advance(5)
        await rig.sim.leave_group(chat_id, ["wmA", "wmC"])
    join, leave = held
    for item in (leave, join):  # the leave arrives first
        assert (await rig.sim.deliver(item)).ok
        await drain(rig, clock)

    assert await active_members(rig) == {"lulu", "wmB"} == set(rig.state.groups[chat_id].members)
    [loss] = await rows(rig, Loss)
    assert loss.customer_id == (await customer(rig, "wmA")).id
    b = await customer(rig, "wmB")
    assert len(await rows(rig, Touch, Touch.customer_id == b.id)) == 1


async def test_duplicates_and_rereads_do_not_double_count(rig: Rig, clock: FrozenClock) -> None:
    chat_id = await new_group(rig, clock)
    await rig.sim.join_group(chat_id, ["wmDUP"], join_state="group_fans", duplicates=3)
    await drain(rig, clock)
    await rig.sim.update_group(chat_id, notice="每周五抽奖")  # same member_version: nothing to do
    await drain(rig, clock)
    # Two re-reads in flight at once (the first waited longer than the debounce window).
    await rig.sim.update_group(chat_id, owner="lulu")
    await rig.drain()  # handled now; its re-read waits for +2 s
    clock.advance(120)
    await rig.sim.update_group(chat_id, name="又改名了")
    before = len(rig.state.calls_to("externalcontact/groupchat/get"))
    await drain(rig, clock)

    assert len(rig.state.calls_to("externalcontact/groupchat/get")) == before + 2
    dup = await customer(rig, "wmDUP")
    assert len(await rows(rig, Touch, Touch.customer_id == dup.id)) == 1
    assert await active_members(rig) == {"lulu", "wmDUP"}
    [group] = await rows(rig, GroupChat, GroupChat.chat_id == chat_id)
    assert (group.name, group.notice) == ("又改名了", "每周五抽奖")


async def test_one_pending_reread_per_chat(rig: Rig, clock: FrozenClock) -> None:
    chat_id = await new_group(rig, clock)
    before = len(rig.state.calls_to("externalcontact/groupchat/get"))
    for i in range(5):  # one join a second: each pushes the pending re-read back
        last = clock.now()
        await rig.sim.join_group(chat_id, [f"wmBURST{i}"], join_state="group_fans")
        await rig.drain()
        clock.advance(1)
    api = OutboxCall.api == "externalcontact/groupchat/get"
    [pending] = await rows(rig, OutboxCall, api, OutboxCall.state == "pending")
    assert pending.next_attempt_at == last + timedelta(seconds=2)
    await drain(rig, clock)
    assert len(rig.state.calls_to("externalcontact/groupchat/get")) == before + 1
    assert await active_members(rig) == {"lulu"} | {f"wmBURST{i}" for i in range(5)}


async def test_dismiss_ends_every_membership(rig: Rig, clock: FrozenClock) -> None:
    chat_id = await new_group(rig, clock)
    await rig.sim.join_group(chat_id, ["wmX", "wmY"], join_state="group_fans")
    await drain(rig, clock)
    reads = len(rig.state.calls_to("externalcontact/groupchat/get"))
    await rig.sim.join_group(chat_id, ["wmLATE"], join_state="group_fans")
    await rig.drain()  # handled: its re-read is pending (+2 s)…
    await rig.sim.dismiss_group(chat_id)  # …when the group is dismissed
    await drain(rig, clock)

    assert len(rig.state.calls_to("externalcontact/groupchat/get")) == reads  # no read of a dismissed group
    [group] = await rows(rig, GroupChat, GroupChat.chat_id == chat_id)
    assert group.dismissed_at is not None
    assert await active_members(rig) == set()
    losses = await rows(rig, Loss)
    assert sorted(loss.kind for loss in losses) == ["left_group", "left_group"]
    assert all(loss.channel_code == "group_fans" for loss in losses)
    [expired] = await rows(
        rig, OutboxCall, OutboxCall.api == "externalcontact/groupchat/get", OutboxCall.state == "expired"
    )
    assert expired.last_error == "group dismissed"


async def test_invited_member_is_unattributed_and_a_rejoin_counts_again(rig: Rig, clock: FrozenClock) -> None:
    chat_id = await new_group(rig, clock)
    await rig.sim.join_group(chat_id, ["wmINV"], join_scene=1, invitor="lulu")  # no join-way state
    await drain(rig, clock)
    inv = await customer(rig, "wmINV")
    [touch] = await rows(rig, Touch, Touch.customer_id == inv.id)
    assert touch.channel_code is None  # unattributed; no friend channel's default tags on a group member
    assert not await rows(rig, CustomerTag, CustomerTag.customer_id == inv.id)

    clock.advance(60)
    await rig.sim.leave_group(chat_id, ["wmINV"])
    await drain(rig, clock)
    clock.advance(60)
    await rig.sim.join_group(chat_id, ["wmINV"], join_state="group_fans")  # back, through the code this time
    await drain(rig, clock)
    [member] = await rows(rig, GroupMember, GroupMember.member_id == "wmINV")
    assert (member.active, member.left_at, member.channel_code) == (True, None, "group_fans")
    touches = await rows(rig, Touch, Touch.customer_id == inv.id)
    assert sorted(str(t.channel_code) for t in touches) == ["None", "group_fans"]
    [loss] = await rows(rig, Loss, Loss.customer_id == inv.id)
    assert loss.channel_code is None
