"""Lottery rules: window, kill switches, the issuance alarm, eligibility, bonus tickets from check-in."""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from bot.clock import FrozenClock
from bot.config import Settings
from handlers.growth.tables import CustomerTag, Touch
from handlers.interactions.checkin import check_in
from handlers.interactions.content.model import Eligibility
from handlers.interactions.lottery.admin import kill_command, status_command
from handlers.interactions.lottery.draw import DrawOutcome, bonus_tickets, draw
from handlers.interactions.rewards import grant_ticket
from handlers.interactions.tables import Draw, LotteryCampaignState
from tests.interactions.helpers import Env, campaign, open_env


@pytest.fixture
async def env(settings: Settings, clock: FrozenClock) -> AsyncIterator[Env]:
    async for e in open_env(settings, clock):
        yield e


async def test_the_real_unbox_campaign_answers_in_chinese_and_needs_a_follower(env: Env) -> None:
    [follower] = await env.customers(1, mp_follower=True)
    [stranger] = await env.customers(1)
    first = await env.run(lambda ctx: draw(ctx, follower, "unbox", "mp"))
    assert first.outcome in {DrawOutcome.WIN, DrawOutcome.LOSE}
    if first.outcome is DrawOutcome.LOSE:
        assert first.text == "差一点点～这次没有抽中，明天再来开箱！连续签到 7 天还能多得一次机会。"
    again = await env.run(lambda ctx: draw(ctx, follower, "unbox", "mp"))
    assert again.outcome is DrawOutcome.LIMIT_REACHED  # per_day = 1
    refused = await env.run(lambda ctx: draw(ctx, stranger, "unbox", "mp"))
    assert refused.outcome is DrawOutcome.NOT_ELIGIBLE
    assert refused.text == "这个活动仅限指定会员参加，先去看看其他福利吧～"


async def test_outside_the_window_or_unknown_the_campaign_is_not_open(env: Env) -> None:
    [cid] = await env.customers(1, mp_follower=True)
    env.clock.set(datetime(2026, 11, 20, 1, 59, 59, tzinfo=UTC))  # 09:59:59 in Shanghai, opens at 10:00
    early = await env.run(lambda ctx: draw(ctx, cid, "unbox", "mp"))
    assert early.outcome is DrawOutcome.NOT_OPEN and early.text == "「开箱抽奖」还没开始或已经结束啦，关注后续活动哦。"
    env.clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert (await env.run(lambda ctx: draw(ctx, cid, "unbox", "mp"))).outcome is DrawOutcome.NOT_OPEN
    assert (await env.run(lambda ctx: draw(ctx, cid, "nope", "mp"))).outcome is DrawOutcome.NOT_OPEN
    assert await env.all(select(Draw)) == []


async def test_both_kill_switches_stop_draws_at_once(env: Env) -> None:
    env.with_campaigns(campaign("k"))
    a, b, c = await env.customers(3)
    assert (await env.run(lambda ctx: draw(ctx, a, "k", "h5"))).won
    out = io.StringIO()
    assert await kill_command(env.settings, "k", "奖品寄错了", out) == 0
    assert (await env.run(lambda ctx: draw(ctx, b, "k", "h5"))).outcome is DrawOutcome.NOT_OPEN
    assert await kill_command(env.settings, "k", "", out, resume=True) == 0
    assert (await env.run(lambda ctx: draw(ctx, b, "k", "h5"))).won
    env.with_campaigns(campaign("k", enabled=False))  # content: enabled = false
    assert (await env.run(lambda ctx: draw(ctx, c, "k", "h5"))).outcome is DrawOutcome.NOT_OPEN


async def test_the_issuance_alarm_logs_an_error_and_kills_the_campaign(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.with_campaigns(campaign("fast", alarm_per_hour=3))
    customers = await env.customers(6)
    with caplog.at_level(logging.ERROR, logger="handlers.interactions.lottery.draw"):
        results = [await env.run(lambda ctx, c=c: draw(ctx, c, "fast", "h5")) for c in customers]
    assert [r.outcome for r in results] == [DrawOutcome.WIN] * 4 + [DrawOutcome.NOT_OPEN] * 2
    assert any("issuance alarm" in r.message or "killed" in r.message for r in caplog.records)
    state = await env.scalar(select(LotteryCampaignState).where(LotteryCampaignState.campaign_id == "fast"))
    assert state.killed and "alarm_per_hour 3" in state.killed_reason
    env.clock.advance(timedelta(hours=2))  # the alarm does not lift itself: an operator resumes
    assert (await env.run(lambda ctx: draw(ctx, customers[5], "fast", "h5"))).outcome is DrawOutcome.NOT_OPEN


async def test_eligibility_by_tag_and_by_channel(env: Env) -> None:
    tagged = dataclasses.replace(campaign("vip"), eligibility=Eligibility(tags=("会员/VIP", "会员/金卡")))
    by_channel = dataclasses.replace(campaign("pkg"), eligibility=Eligibility(channels=("pkgcard",)))
    env.with_campaigns(tagged, by_channel)
    a, b, c, d = await env.customers(4)
    now = env.clock.now()
    async with env.sessions() as s, s.begin():
        await s.execute(insert(CustomerTag).values(customer_id=a, tag="会员/金卡", source="operator", created_at=now))
        await s.execute(
            insert(Touch).values(
                customer_id=c, channel_code="pkgcard", platform="wecom_friend", action="friend_added", occurred_at=now
            )
        )
    outcome = {}
    for cid in (a, b, c, d):
        for cmp in ("vip", "pkg"):
            outcome[cid, cmp] = (await env.run(lambda ctx, x=cid, y=cmp: draw(ctx, x, y, "h5"))).outcome
    assert outcome[a, "vip"] is DrawOutcome.WIN and outcome[b, "vip"] is DrawOutcome.NOT_ELIGIBLE
    assert outcome[c, "pkg"] is DrawOutcome.WIN and outcome[d, "pkg"] is DrawOutcome.NOT_ELIGIBLE
    assert outcome[a, "pkg"] is DrawOutcome.NOT_ELIGIBLE


async def test_a_bonus_ticket_is_an_extra_draw_beyond_the_daily_limit(env: Env) -> None:
    env.with_campaigns(campaign("extra", per_day=1))
    [cid] = await env.customers(1)
    await env.run(lambda ctx: grant_ticket(ctx, "extra", cid, "gift:1"))
    assert not await env.run(lambda ctx: grant_ticket(ctx, "extra", cid, "gift:1"))  # same ref: once
    assert await env.run(lambda ctx: bonus_tickets(ctx, cid, "extra")) == 1
    outcomes = [(await env.run(lambda ctx: draw(ctx, cid, "extra", "h5"))).outcome for _ in range(3)]
    assert outcomes == [DrawOutcome.WIN, DrawOutcome.WIN, DrawOutcome.LIMIT_REACHED]
    assert await env.run(lambda ctx: bonus_tickets(ctx, cid, "extra")) == 0


async def test_the_seven_day_check_in_milestone_gives_an_unbox_draw(env: Env) -> None:
    [cid] = await env.customers(1, mp_follower=True)
    outcomes = []
    for _ in range(7):
        await env.run(lambda ctx: check_in(ctx, cid, "mp"))
        outcomes.append((await env.run(lambda ctx: draw(ctx, cid, "unbox", "mp"))).outcome)
        env.clock.advance(timedelta(days=1))
    drawn = {DrawOutcome.WIN, DrawOutcome.LOSE}
    assert all(o in drawn for o in outcomes[:3])  # total = 3 over the campaign
    assert outcomes[3:6] == [DrawOutcome.LIMIT_REACHED] * 3
    assert outcomes[6] in drawn  # day 7: the milestone's extra draw
    assert (await env.run(lambda ctx: draw(ctx, cid, "unbox", "mp"))).outcome is DrawOutcome.LIMIT_REACHED


async def test_status_publishes_the_seed_hash_before_any_draw(env: Env) -> None:
    out = io.StringIO()
    assert await status_command(env.settings, out, clock=env.clock, content=env.content) == 0
    text = out.getvalue()
    state = await env.scalar(select(LotteryCampaignState).where(LotteryCampaignState.campaign_id == "unbox"))
    assert f"seed_sha256: {state.seed_sha256}" in text and state.seed not in text
    assert "prize coupon_49_20: 6/6 left" in text
    assert "coupon pool unbox_49_20: 50 unissued" in text
