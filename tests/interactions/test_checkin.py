"""Check-in: one per local day under concurrency, the Asia/Shanghai day boundary, streaks, milestones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from handlers.growth.tables import CustomerTag
from handlers.interactions.checkin import CheckinResult, CheckinStatus, check_in, leaderboard
from handlers.interactions.points import balance
from handlers.interactions.tables import Checkin, CouponCode, LotteryTicket, PointsEntry
from tests.interactions.helpers import Env, open_env

EVENING = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 18:00 in Asia/Shanghai


@pytest.fixture
async def env(settings: Settings, clock: FrozenClock) -> AsyncIterator[Env]:
    async for e in open_env(settings, clock):
        yield e


async def days_in_a_row(env: Env, cid: int, n: int) -> list[CheckinResult]:
    results = []
    for _ in range(n):
        results.append(await env.run(lambda ctx: check_in(ctx, cid, "mp")))
        env.clock.advance(timedelta(days=1))
    return results


async def test_a_hundred_concurrent_check_ins_make_one(env: Env) -> None:
    [cid] = await env.customers(1)
    results = await asyncio.gather(*(env.run(lambda ctx: check_in(ctx, cid, "h5")) for _ in range(100)))
    statuses = [r.status for r in results]
    assert statuses.count(CheckinStatus.CHECKED_IN) == 1
    assert statuses.count(CheckinStatus.ALREADY) == 99
    assert await env.scalar(select(func.count()).where(Checkin.customer_id == cid)) == 1
    assert await env.scalar(select(func.count()).where(PointsEntry.customer_id == cid)) == 1
    assert await env.run(lambda ctx: balance(ctx, cid)) == 5
    already = next(r for r in results if r.status is CheckinStatus.ALREADY)
    assert already.text == "今天已经签过到啦～已连续 1 天，当前 5 积分，明天再来哦。"


async def test_the_day_boundary_follows_asia_shanghai(env: Env) -> None:
    [cid] = await env.customers(1)
    env.clock.set(datetime(2026, 11, 23, 15, 59, 59, tzinfo=UTC))  # 23:59:59 on the 23rd in Shanghai
    first = await env.run(lambda ctx: check_in(ctx, cid, "mp"))
    env.clock.set(datetime(2026, 11, 23, 16, 0, 1, tzinfo=UTC))  # 00:00:01 on the 24th (still the 23rd in UTC)
    second = await env.run(lambda ctx: check_in(ctx, cid, "mp"))
    assert (first.status, first.local_day) == (CheckinStatus.CHECKED_IN, "2026-11-23")
    assert (second.status, second.local_day, second.streak) == (CheckinStatus.CHECKED_IN, "2026-11-24", 2)
    env.clock.set(datetime(2026, 11, 24, 15, 59, 59, tzinfo=UTC))  # 23:59:59 on the 24th: same day
    third = await env.run(lambda ctx: check_in(ctx, cid, "mp"))
    assert (third.status, third.local_day) == (CheckinStatus.ALREADY, "2026-11-24")


async def test_streak_bonuses_and_the_seven_day_milestone(env: Env) -> None:
    [cid] = await env.customers(1, mp_follower=True)
    results = await days_in_a_row(env, cid, 7)
    assert [r.streak for r in results] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.points for r in results] == [5, 5, 7, 7, 7, 7, 10]
    seventh = results[-1]
    assert seventh.balance == 48 + 20
    assert seventh.text == (
        "签到成功 ✅ 已连续签到 7 天，本次 +10 积分，当前共 68 积分。\n"
        "🎉 连签 7 天达成！额外送你 20 积分和一次「开箱抽奖」机会，回复「抽奖」试试手气。"
    )
    tags = await env.all(select(CustomerTag.tag).where(CustomerTag.customer_id == cid))
    assert tags == ["互动/连签7天"]
    tickets = await env.all(select(LotteryTicket).where(LotteryTicket.customer_id == cid))
    assert [(t.campaign_id, t.used_at) for t in tickets] == [("unbox", None)]


async def test_a_missed_day_restarts_the_streak_with_its_own_reply(env: Env) -> None:
    [cid] = await env.customers(1)
    await days_in_a_row(env, cid, 3)
    env.clock.advance(timedelta(days=1))  # skipped
    again = await env.run(lambda ctx: check_in(ctx, cid, "kf"))
    assert (again.streak, again.points) == (1, 5)
    assert again.text.startswith("签到成功 ✅ 连续签到断了一天，从第 1 天重新开始：+5 积分")


async def test_the_thirty_day_coupon_is_given_once_per_customer(env: Env) -> None:
    [cid] = await env.customers(1)
    now = env.clock.now()

    async def reach_30(when: datetime) -> CheckinResult:
        env.clock.set(when - timedelta(days=1))
        day = when.astimezone(env.settings.tz).date() - timedelta(days=1)
        async with env.sessions() as s, s.begin():
            s.add(
                Checkin(
                    customer_id=cid,
                    local_day=day.isoformat(),
                    checked_at=env.clock.now(),
                    streak=29,
                    points=0,
                    source="mp",
                )
            )
        env.clock.set(when)
        return await env.run(lambda ctx: check_in(ctx, cid, "mp"))

    first = await reach_30(now)
    assert first.milestone is not None and first.milestone.coupon_code
    assert "10 元无门槛券" in first.text
    second = await reach_30(now + timedelta(days=40))
    assert second.streak == 30 and second.milestone is None
    issued = await env.all(select(CouponCode.code).where(CouponCode.customer_id == cid))
    assert issued == [first.milestone.coupon_code]


async def test_leaderboards_by_day_streak_and_week_points(env: Env) -> None:
    a, b, c = await env.customers(3)
    await days_in_a_row(env, a, 1)  # Monday 2026-11-23 … a checks in once, b twice, c three times
    env.clock.set(EVENING)
    await days_in_a_row(env, b, 2)
    env.clock.set(EVENING - timedelta(hours=1))  # c is earlier each day: ahead of b on equal streaks
    await days_in_a_row(env, c, 3)
    env.clock.set(EVENING + timedelta(days=1))
    today = await env.run(lambda ctx: leaderboard(ctx, "day"))
    assert [(e.rank, e.customer_id, e.streak) for e in today] == [(1, c, 2), (2, b, 2)]
    env.clock.set(EVENING + timedelta(days=2))
    week = await env.run(lambda ctx: leaderboard(ctx, "week", 2))
    assert [(e.customer_id, e.points, e.days) for e in week] == [(c, 17, 3), (b, 10, 2)]
