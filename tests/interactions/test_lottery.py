"""Lottery draws under concurrency: exact stock, one draw per allowance, coupon codes issued once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from handlers.interactions.content.model import Prize, PrizeKind
from handlers.interactions.lottery.draw import DrawOutcome, DrawResult, draw
from handlers.interactions.rewards import issue_coupon
from handlers.interactions.tables import CouponCode, Draw, PointsEntry, PrizeStock
from tests.interactions.helpers import Env, campaign, open_env


@pytest.fixture
async def env(settings: Settings, clock: FrozenClock) -> AsyncIterator[Env]:
    async for e in open_env(settings, clock):
        yield e


async def draws(env: Env, customer_ids: list[int], campaign_id: str) -> list[DrawResult]:
    return list(
        await asyncio.gather(*(env.run(lambda ctx, c=c: draw(ctx, c, campaign_id, "h5")) for c in customer_ids))
    )


@pytest.mark.parametrize("run", [1, 2, 3])
async def test_five_hundred_concurrent_draws_on_ten_prizes_give_exactly_ten_winners(env: Env, run: int) -> None:
    env.with_campaigns(campaign(f"t{run}"))
    customers = await env.customers(500)
    results = await draws(env, customers, f"t{run}")
    winners = [r for r in results if r.won]
    assert len(winners) == 10
    assert sorted(r.prize_id or "" for r in winners) == ["cup"] * 4 + ["pts"] * 6
    assert all(r.outcome is DrawOutcome.LOSE for r in results if not r.won)
    assert sorted(r.seq or 0 for r in results) == list(range(1, 501))  # contiguous, no collision
    stock = await env.all(select(PrizeStock.remaining).where(PrizeStock.campaign_id == f"t{run}"))
    assert stock == [0, 0]
    assert await env.scalar(select(func.count()).where(Draw.campaign_id == f"t{run}")) == 500
    stored = await env.scalar(select(func.count()).where(Draw.campaign_id == f"t{run}", Draw.prize_id.is_not(None)))
    assert stored == 10
    points = await env.scalar(select(func.count()).where(PointsEntry.reason == "lottery", PointsEntry.delta == 10))
    assert points == 6
    assert "保温杯" in next(r.text for r in winners if r.prize_id == "cup")


async def test_a_customer_limited_to_one_draw_tapping_fifty_times_gets_one(env: Env) -> None:
    env.with_campaigns(campaign("once", per_day=1, total=1))
    [cid] = await env.customers(1)
    results = await draws(env, [cid] * 50, "once")
    outcomes = [r.outcome for r in results]
    assert outcomes.count(DrawOutcome.LIMIT_REACHED) == 49
    assert await env.scalar(select(func.count()).where(Draw.customer_id == cid)) == 1
    assert next(r for r in results if r.outcome is DrawOutcome.LIMIT_REACHED).text == "今天的抽奖次数用完啦，明天再来！"


async def test_per_day_and_total_limits_follow_local_days(env: Env) -> None:
    env.with_campaigns(campaign("daily", per_day=1, total=2))
    [cid] = await env.customers(1)
    outcomes = []
    for _ in range(3):
        outcomes += [r.outcome for r in await draws(env, [cid, cid], "daily")]
        env.clock.advance(86400)
    assert outcomes.count(DrawOutcome.LIMIT_REACHED) == 4
    assert await env.scalar(select(func.count()).where(Draw.customer_id == cid)) == 2


async def test_coupon_codes_are_issued_once_under_concurrency(env: Env) -> None:
    prizes = (Prize("c", "满49减20券", PrizeKind.COUPON, weight=1, stock=40, pool="unbox_49_20"),)
    env.with_campaigns(campaign("coupons", prizes=prizes))
    results = await draws(env, await env.customers(60), "coupons")
    codes = [r.coupon_code for r in results if r.won]
    assert len(codes) == 40 and len(set(codes)) == 40 and None not in codes
    assert all(r.coupon_code in r.text for r in results if r.won)
    rows = await env.all(
        select(CouponCode).where(CouponCode.pool_id == "unbox_49_20", CouponCode.issued_at.is_not(None))
    )
    assert sorted(r.code for r in rows) == sorted(c or "" for c in codes)
    stored = await env.all(select(Draw.coupon_code).where(Draw.campaign_id == "coupons", Draw.coupon_code.is_not(None)))
    assert sorted(stored) == sorted(codes)


async def test_issuing_codes_directly_never_gives_one_twice_and_stops_when_the_pool_is_empty(env: Env) -> None:
    customers = await env.customers(60)
    codes = await asyncio.gather(
        *(env.run(lambda ctx, c=c: issue_coupon(ctx, "unbox_49_20", c, f"direct:{c}")) for c in customers)
    )
    issued = [c for c in codes if c is not None]
    assert len(issued) == len(set(issued)) == 50  # the CSV holds 50 codes
    again = await env.run(lambda ctx: issue_coupon(ctx, "unbox_49_20", customers[0], f"direct:{customers[0]}"))
    assert again == codes[0]  # the same ref gets the same code back


async def test_points_cost_is_spent_per_draw_and_refused_without_points(env: Env) -> None:
    from handlers.interactions.points import award, balance

    cups = (Prize("cup", "保温杯", PrizeKind.PHYSICAL, weight=1, stock=5),)
    env.with_campaigns(campaign("paid", prizes=cups, points_cost=10))
    [cid] = await env.customers(1)
    await env.run(lambda ctx: award(ctx, cid, 15, "gift", "g"))
    first, second = [await env.run(lambda ctx: draw(ctx, cid, "paid", "mp")) for _ in range(2)]
    assert first.outcome is DrawOutcome.WIN
    assert second.outcome is DrawOutcome.NO_POINTS and "积分不够" in second.text
    assert await env.run(lambda ctx: balance(ctx, cid)) == 5
    spent = await env.all(
        select(PointsEntry.delta).where(PointsEntry.customer_id == cid, PointsEntry.reason == "lottery")
    )
    assert spent == [-10]
    assert await env.scalar(select(func.count()).where(Draw.customer_id == cid)) == 1
