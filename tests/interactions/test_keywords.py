"""Keyword replies in the Official Account chat, through the simulator: passive replies inside the budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer
from bot.rig import Rig
from bot.wechat import parse_xml
from handlers.interactions.tables import Checkin, Draw, PointsBalance, PointsEntry
from tests.support.apps import start_rig


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=5)
    yield rig
    await rig.close()


async def _follower(rig: Rig) -> str:
    followed = await rig.sim.follow()
    await rig.drain()
    return followed.openid


def _reply(delivery: object) -> dict[str, str]:
    raw = getattr(delivery, "reply", None)
    assert raw is not None, "expected a passive reply"
    parsed: dict[str, str] = parse_xml(raw)
    return parsed


async def _ledger(rig: Rig, openid: str) -> tuple[int, int, int]:
    """(ledger rows, ledger sum, balance) of the customer."""
    async with rig.services.sessions() as s:
        cid = await s.scalar(select(Customer.id).where(Customer.openid == openid))
        rows = await s.scalar(select(func.count()).select_from(PointsEntry).where(PointsEntry.customer_id == cid))
        total = await s.scalar(
            select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(PointsEntry.customer_id == cid)
        )
        bal = await s.scalar(select(PointsBalance.balance).where(PointsBalance.customer_id == cid))
        return int(rows or 0), int(total or 0), int(bal or 0)


async def test_checkin_keyword_gets_a_passive_reply_and_a_second_one_changes_nothing(rig: Rig) -> None:
    openid = await _follower(rig)
    first = await rig.sim.send_text(openid, "签到")
    reply = _reply(first)
    assert reply["MsgType"] == "text" and reply["ToUserName"] == openid
    assert "签到成功" in reply["Content"] and "连续签到 1 天" in reply["Content"] and "+5 积分" in reply["Content"]
    await rig.drain()
    before = await _ledger(rig, openid)
    assert before == (1, 5, 5)

    second = await rig.sim.send_text(openid, " 签到 ")
    again = _reply(second)
    assert "今天已经签过到啦" in again["Content"] and "5 积分" in again["Content"]
    await rig.drain()
    assert await _ledger(rig, openid) == before  # nothing changed
    async with rig.services.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Checkin)) == 1
    # answered in the HTTP response, nothing late; the only customer-service message is the follow drip's
    # "0m" step, which the drip worker sends as soon as the follow's enrolment commits
    assert all("from=drip_mp_48h" in str(c.body) for c in rig.state.calls_to("message/custom/send"))


async def test_streak_grows_across_local_days(rig: Rig, clock: FrozenClock) -> None:
    openid = await _follower(rig)
    await rig.sim.send_text(openid, "签到")
    clock.advance(timedelta(days=1))
    reply = _reply(await rig.sim.send_text(openid, "签到"))
    assert "连续签到 2 天" in reply["Content"]


async def test_lottery_keyword_draws_once_per_day(rig: Rig) -> None:
    openid = await _follower(rig)
    reply = _reply(await rig.sim.send_text(openid, "抽奖"))
    assert reply["MsgType"] == "text"
    assert "恭喜" in reply["Content"] or "没有抽中" in reply["Content"]
    limit = _reply(await rig.sim.send_text(openid, "抽奖"))
    assert "次数用完" in limit["Content"]
    await rig.drain()
    async with rig.services.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Draw)) == 1


async def test_menu_click_maps_to_the_checkin_action(rig: Rig) -> None:
    openid = await _follower(rig)
    reply = _reply(await rig.sim.click_menu(openid, "checkin"))
    assert "签到成功" in reply["Content"]
    again = _reply(await rig.sim.click_menu(openid, "lottery:unbox"))
    assert "恭喜" in again["Content"] or "没有抽中" in again["Content"]


async def test_message_rule_answers_text_then_sends_the_link_as_a_custom_message(rig: Rig) -> None:
    openid = await _follower(rig)
    reply = _reply(await rig.sim.send_text(openid, "礼包"))
    assert "新人礼包" in reply["Content"]
    await rig.drain()
    # the follow also started the 48-hour drip, whose first step is a text custom message
    [custom] = [c for c in rig.state.calls_to("message/custom/send") if c.body and c.body["msgtype"] == "news"]
    assert custom.errcode == 0 and custom.body is not None
    assert custom.body["msgtype"] == "news" and custom.body["touser"] == openid
    assert custom.body["news"]["articles"][0]["url"].startswith("https://shop.example.com/member/gift")


async def test_time_window_picks_the_rule_for_the_hour(rig: Rig, clock: FrozenClock) -> None:
    openid = await _follower(rig)  # 10:00 UTC = 18:00 Asia/Shanghai: on duty
    assert "正在为你转接" in _reply(await rig.sim.send_text(openid, "转人工"))["Content"]
    clock.advance(timedelta(hours=5))  # 23:00 local
    assert "9:00-21:00" in _reply(await rig.sim.send_text(openid, "转人工"))["Content"]


async def test_text_without_a_rule_gets_no_reply_and_creates_nothing(rig: Rig) -> None:
    openid = await _follower(rig)
    delivery = await rig.sim.send_text(openid, "你们周末营业吗")
    assert delivery.ok and delivery.reply is None
    await rig.drain()
    assert await _ledger(rig, openid) == (0, 0, 0)
