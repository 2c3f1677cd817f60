"""Reply planners through the running app and the simulator: content-only passive replies are answered
as soon as the receipt is committed, the handlers record what was sent and never send it again."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.context import Context
from bot.db.models import Customer, Receipt
from bot.dispatcher import Router
from bot.events import Followed
from bot.rig import Rig
from bot.wechat import parse_xml
from handlers.growth.tables import Welcome
from tests.support.apps import feature_routers, start_rig
from tests.support.settings import SHIPPED_CONTENT, make_settings
from tests.support.wire import MP

POSTER_AB = """[[messages]]
id = "welcome_mp_poster"
name = "618海报关注回复"

[[messages.variants]]
id = "a"
weight = 50
text = "海报版本A：欢迎关注{channel_name}"

[[messages.variants]]
id = "b"
weight = 50
text = "海报版本B：欢迎关注{channel_name}"
"""


def custom_messages(rig: Rig) -> list[object]:
    """Customer-service messages other than the follow drip's ("0m" step, sent as soon as its enrolment
    commits): a late copy of a planned reply would be one of these."""
    return [c for c in rig.state.calls_to("message/custom/send") if "from=drip_" not in str(c.body)]


def _ab_content(tmp_path: Path) -> Path:
    """The shipped content with the poster channel's welcome split into two variants."""
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    messages = root / "messages.toml"
    text = messages.read_text(encoding="utf-8")
    block = re.compile(r'\[\[messages\]\]\nid = "welcome_mp_poster".*?(?=\n# 公众号普通关注)', re.S)
    assert block.search(text), "shipped content changed: adjust the test's A/B welcome"
    messages.write_text(block.sub(POSTER_AB, text), encoding="utf-8")
    return root


@pytest.fixture
async def rig(db_url: str, clock: FrozenClock, tmp_path: Path) -> AsyncIterator[Rig]:
    settings = make_settings(db_url, content_dir=str(_ab_content(tmp_path)))
    rig = await start_rig(settings, clock, rng=3)
    yield rig
    await rig.close()


def _reply(delivery: object) -> dict[str, str]:
    assert getattr(delivery, "reply_error", None) is None  # the simulator verified and decrypted it
    raw = getattr(delivery, "reply", None)
    assert raw is not None, "expected a passive reply"
    parsed: dict[str, str] = parse_xml(raw)
    return parsed


def _decrypt(body: str) -> str:
    envelope = parse_xml(body)
    MP.check(envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"])
    return MP.decrypt(envelope["Encrypt"])


async def _welcome_of(rig: Rig, openid: str) -> Welcome:
    async with rig.services.sessions() as s:
        customer = (await s.scalars(select(Customer).where(Customer.openid == openid))).one()
        return (await s.scalars(select(Welcome).where(Welcome.customer_id == customer.id))).one()


async def test_poster_follow_gets_the_planned_welcome_and_the_row_names_the_variant_sent(rig: Rig) -> None:
    sent: dict[str, str] = {}
    for _ in range(16):
        follower = await rig.sim.follow(scene="poster_618")
        reply = _reply(follower.delivery)
        assert reply["MsgType"] == "text" and reply["ToUserName"] == follower.openid
        sent[follower.openid] = reply["Content"]
    await rig.drain()
    variants = set()
    for openid, text in sent.items():
        row = await _welcome_of(rig, openid)
        assert (row.via, row.state, row.channel_code) == ("passive_reply", "sent", "mp_poster_618")
        variant = "a" if text.startswith("海报版本A") else "b"
        assert text == f"海报版本{variant.upper()}：欢迎关注618海报"
        assert row.variant_ref == f"welcome_mp_poster/{variant}"  # what the follower actually read
        variants.add(variant)
    assert variants == {"a", "b"}  # the split is real, not one variant for everyone
    assert not custom_messages(rig)  # no late copy of a planned reply


async def test_keyword_answer_is_planned_and_its_link_follows_once(rig: Rig) -> None:
    follower = await rig.sim.follow()
    await rig.drain()
    reply = _reply(await rig.sim.send_text(follower.openid, "礼包"))
    assert reply["MsgType"] == "text" and reply["Content"].startswith("新人礼包：5 元无门槛券")
    await rig.drain()
    [link] = custom_messages(rig)  # the link follow-up only, not the text again
    body = link.body or {}
    assert body["msgtype"] == "news" and body["touser"] == follower.openid
    assert body["news"]["articles"][0]["title"] == "领取新人礼包"
    assert rig.services.metrics.total("siyu_passive_replies_total") >= 2


async def test_menu_click_with_a_content_answer_is_planned(rig: Rig) -> None:
    follower = await rig.sim.follow()
    reply = _reply(await rig.sim.click_menu(follower.openid, "coupons"))
    assert reply["Content"].startswith("当前可用的优惠券都在这里")


async def test_checkin_keyword_still_waits_for_its_own_transaction(rig: Rig) -> None:
    follower = await rig.sim.follow()
    await rig.drain()
    reply = _reply(await rig.sim.send_text(follower.openid, "签到"))
    assert "签到成功" in reply["Content"] and "+5 积分" in reply["Content"]
    await rig.drain()
    assert not custom_messages(rig)


async def test_duplicate_delivery_gets_the_same_planned_reply_and_one_receipt(rig: Rig) -> None:
    follower = await rig.sim.follow()
    await rig.drain()
    delivery = await rig.sim.send_text(follower.openid, "人工", duplicates=2)
    first = _reply(delivery)
    for attempt in delivery.attempts[1:]:
        assert attempt.status == 200 and attempt.duplicate
        assert parse_xml(_decrypt(attempt.body))["Content"] == first["Content"]
    assert "人工客服" in first["Content"]
    await rig.drain()
    async with rig.services.sessions() as s:
        texts = (await s.scalars(select(Receipt).where(Receipt.kind == "text_received"))).all()
    assert len(texts) == 1
    assert not custom_messages(rig)


async def test_planned_reply_does_not_wait_for_stalled_handlers(
    db_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    stalled = Router("stalled")

    @stalled.on(Followed)
    async def stall(event: Followed, ctx: Context) -> None:
        await gate.wait()

    settings = make_settings(db_url, server={"reply_budget_seconds": 0.2}, content_dir=str(_ab_content(tmp_path)))
    rig = await start_rig(settings, clock, rng=3, routers=[stalled, *feature_routers()])
    try:
        follower = await asyncio.wait_for(rig.sim.follow(scene="poster_618"), 5)
        assert _reply(follower.delivery)["Content"].startswith("海报版本")
        assert rig.services.dispatcher is not None and rig.services.dispatcher.in_flight == 1  # still stalled
        gate.set()
        await rig.drain()
        row = await _welcome_of(rig, follower.openid)
        assert row.state == "sent" and row.variant_ref in {"welcome_mp_poster/a", "welcome_mp_poster/b"}
        assert not custom_messages(rig)  # the handlers did not send it late
    finally:
        gate.set()
        await rig.close()
