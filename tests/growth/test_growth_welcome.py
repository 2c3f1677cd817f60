"""The growth loop through the simulator: channel code → attribution → welcome (20 s) → tags → profile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer, OutboxCall
from bot.rig import Rig
from bot.simulator import Withheld
from bot.wechat import parse_xml
from handlers.growth.synced import MP_TAG, WECOM_TAG
from handlers.growth.tables import CustomerTag, Loss, Touch, Welcome
from tests.growth.helpers import sync_content
from tests.support.apps import start_rig

TAG_IDS: dict[str, str] = {}


def tag_id(ref: str, kind: str = WECOM_TAG) -> str:
    return TAG_IDS[f"{kind}:{ref}"]


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:

    rig = await start_rig(settings, clock, rng=7)
    TAG_IDS.update(await sync_content(rig, clock))
    yield rig
    await rig.close()


async def _one(rig: Rig, model: type, *where: object) -> object:
    async with rig.services.sessions() as s:
        return (await s.scalars(select(model).where(*where))).one()


async def test_package_card_customer_gets_that_channels_welcome_tags_and_profile(rig: Rig) -> None:
    before = len(rig.state.calls)
    added = await rig.sim.add_friend("lulu", state="pkgcard", name="王小米", unionid="uPKG1")
    assert added.delivery.ok
    await rig.drain()
    calls = [c.api for c in rig.state.calls[before:] if c.platform == "wecom" and c.api != "gettoken"]
    assert calls[0] == "externalcontact/send_welcome_msg"  # nothing before the welcome
    welcome = rig.state.last_call("externalcontact/send_welcome_msg")
    assert welcome.errcode == 0
    assert welcome.body["welcome_code"] == added.welcome_code
    text = welcome.body["text"]["content"]
    assert "朋友" in text and "小鹿" in text and "{" not in text  # profile unknown yet: neutral fallbacks
    [attachment] = welcome.body["attachments"]
    assert attachment["msgtype"] in {"miniprogram", "link"}
    mark = rig.state.last_call("externalcontact/mark_tag")
    expected = [tag_id("渠道/包裹卡"), tag_id("福利/29元礼待领取")]
    assert mark.body == {"userid": "lulu", "external_userid": added.external_userid, "add_tag": expected}
    assert mark.errcode == 0
    assert set(expected) <= set(rig.state.contacts[added.external_userid].follow["lulu"].tag_ids)
    assert "externalcontact/get" in calls
    customer = await _one(rig, Customer, Customer.external_userid == added.external_userid)
    assert isinstance(customer, Customer)
    assert (customer.first_channel, customer.name, customer.unionid) == ("pkgcard", "王小米", "uPKG1")
    row = await _one(rig, Welcome, Welcome.customer_id == customer.id)
    assert isinstance(row, Welcome) and row.variant_ref in {"welcome_pkgcard/a", "welcome_pkgcard/b"}
    outbox = await _one(rig, OutboxCall, OutboxCall.id == row.outbox_id)
    assert isinstance(outbox, OutboxCall) and outbox.state == "sent"
    received = rig.state.contacts[added.external_userid].welcomes
    assert len(received) == 1


async def test_fifty_customers_in_one_second_all_get_their_welcome(rig: Rig) -> None:
    adds = await asyncio.gather(*(rig.sim.add_friend("axin", state="pkgcard") for _ in range(50)))
    await rig.drain()
    sent = rig.state.calls_to("externalcontact/send_welcome_msg")
    assert sorted(c.body["welcome_code"] for c in sent) == sorted(a.welcome_code or "" for a in adds)
    assert all(c.errcode == 0 for c in sent)
    assert len(rig.state.calls_to("externalcontact/mark_tag")) == 50
    for added in adds:
        assert len(rig.state.contacts[added.external_userid].welcomes) == 1


async def test_unknown_state_gets_the_default_welcome_and_counts_as_unattributed(rig: Rig) -> None:
    added = await rig.sim.add_friend("lulu", state="wb:1:4285486")
    await rig.drain()
    mark = rig.state.last_call("externalcontact/mark_tag")
    assert mark.body["add_tag"] == [tag_id("渠道/自然添加")] and mark.errcode == 0
    customer = await _one(rig, Customer, Customer.external_userid == added.external_userid)
    assert isinstance(customer, Customer)
    touch = await _one(rig, Touch, Touch.customer_id == customer.id)
    assert isinstance(touch, Touch) and touch.channel_code is None and touch.raw_key == "wb:1:4285486"
    row = await _one(rig, Welcome, Welcome.customer_id == customer.id)
    assert isinstance(row, Welcome) and row.channel_code is None and row.variant_ref == "welcome_default/default"


async def test_a_welcome_code_older_than_20_seconds_is_recorded_expired_and_not_sent(
    rig: Rig, clock: FrozenClock
) -> None:
    from tests.support.wire import contact_event

    xml = contact_event(
        "add_external_contact", "wmLATE", int(clock.now().timestamp()) - 25, State="pkgcard", WelcomeCode="OLD",
        UserID="lulu",
    )  # fmt: skip
    assert (await rig.sim.deliver(Withheld("wecom", xml))).ok  # pushed as is, signed and encrypted
    await rig.drain()
    assert rig.state.calls_to("externalcontact/send_welcome_msg") == []
    row = await _one(rig, Welcome, Welcome.state == "expired")
    assert isinstance(row, Welcome) and "20 s" in (row.reason or "")


async def test_welcome_being_distributed_is_retried_inside_the_window(rig: Rig, clock: FrozenClock) -> None:
    rig.state.inject_error("externalcontact/send_welcome_msg", 41096, "welcome msg is being distributed")
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await rig.drain()
    clock.advance(1)
    await rig.drain()
    codes = [c.errcode for c in rig.state.calls_to("externalcontact/send_welcome_msg")]
    assert codes == [41096, 0]
    assert len(rig.state.contacts[added.external_userid].welcomes) == 1


async def test_welcome_code_already_used_is_final(rig: Rig, clock: FrozenClock) -> None:
    rig.state.inject_error("externalcontact/send_welcome_msg", 41051, "externaluser has started chatting")
    await rig.sim.add_friend("lulu", state="pkgcard")
    await rig.drain()
    clock.advance(60)
    await rig.drain()
    assert len(rig.state.calls_to("externalcontact/send_welcome_msg")) == 1
    row = await _one(rig, OutboxCall, OutboxCall.api == "externalcontact/send_welcome_msg")
    assert isinstance(row, OutboxCall) and row.state == "failed"


async def test_official_account_follow_via_parametric_qr(rig: Rig) -> None:
    follower = await rig.sim.follow(scene="poster_618")
    assert follower.delivery.reply is not None  # the passive reply, decrypted by the simulator
    reply = parse_xml(follower.delivery.reply)
    assert reply["MsgType"] == "text" and reply["ToUserName"] == follower.openid
    assert "会员礼包" in reply["Content"] or "礼包" in reply["Content"]
    await rig.drain()
    tagged = rig.state.calls_to("tags/members/batchtagging")
    assert sorted(c.body["tagid"] for c in tagged) == sorted(
        int(tag_id(ref, MP_TAG)) for ref in ("渠道/公众号海报", "福利/会员礼包待领取")
    )
    assert all(c.body["openid_list"] == [follower.openid] and c.errcode == 0 for c in tagged)
    customer = await _one(rig, Customer, Customer.openid == follower.openid)
    assert isinstance(customer, Customer) and customer.first_channel == "mp_poster_618" and customer.mp_follower
    tags = await _tags(rig, customer.id)
    assert tags == {"渠道/公众号海报", "福利/会员礼包待领取"}


async def test_plain_follow_gets_default_welcome(rig: Rig) -> None:
    follower = await rig.sim.follow()
    assert follower.delivery.reply is not None
    assert parse_xml(follower.delivery.reply)["MsgType"] in {"text", "news"}
    await rig.drain()
    tagged = rig.state.calls_to("tags/members/batchtagging")
    assert [c.body["tagid"] for c in tagged] == [int(tag_id("渠道/自然关注", MP_TAG))]


async def test_same_person_on_wecom_and_official_account_is_one_customer(rig: Rig) -> None:
    follower = await rig.sim.follow(scene="poster_618")
    rig.state.followers[follower.openid].unionid = "uSAME"
    await rig.drain()
    added = await rig.sim.add_friend("lulu", state="pkgcard", unionid="uSAME")
    await rig.drain()
    async with rig.services.sessions() as s:
        customers = (await s.scalars(select(Customer))).all()
        assert len(customers) == 1
        [c] = customers
        assert (c.openid, c.external_userid, c.unionid) == (follower.openid, added.external_userid, "uSAME")
        assert c.first_channel == "mp_poster_618"
        touches = (await s.scalars(select(Touch.channel_code).where(Touch.customer_id == c.id))).all()
        assert sorted(touches) == ["mp_poster_618", "pkgcard"]


async def test_churn_is_recorded_per_channel(rig: Rig) -> None:
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    follower = await rig.sim.follow(scene="poster_618")
    await rig.drain()
    await rig.sim.delete_friend_by_customer("lulu", added.external_userid)
    await rig.sim.unfollow(follower.openid)
    await rig.drain()
    async with rig.services.sessions() as s:
        losses = sorted((x.channel_code, x.kind) for x in (await s.scalars(select(Loss))).all())
        friend = (await s.scalars(select(Customer).where(Customer.external_userid == added.external_userid))).one()
    assert losses == [("mp_poster_618", "unfollowed"), ("pkgcard", "customer_deleted_staff")]
    assert friend.wecom_friend is False


async def _tags(rig: Rig, customer_id: int) -> set[str]:
    async with rig.services.sessions() as s:
        return set((await s.scalars(select(CustomerTag.tag).where(CustomerTag.customer_id == customer_id))).all())


def test_deadline_constant_is_the_platform_limit() -> None:
    from handlers.growth.friends import WELCOME_WINDOW

    assert timedelta(seconds=20) == WELCOME_WINDOW
    assert datetime(2026, 1, 1, tzinfo=UTC)  # keep imports honest
