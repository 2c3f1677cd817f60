"""Draws at live-stream rate: concurrent requests of a campaign settled together, exactly as one by one."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer
from handlers.growth.tables import CustomerTag, Touch
from handlers.interactions.content.model import Eligibility, Prize, PrizeKind
from handlers.interactions.lottery.admin import verify_command
from handlers.interactions.lottery.batch import batcher_for, draw_batched
from handlers.interactions.lottery.draw import DrawOutcome, DrawRequest, DrawResult, draw, draw_many
from handlers.interactions.points import award, balance
from handlers.interactions.rewards import grant_ticket
from handlers.interactions.tables import Draw, LotteryCampaignState, LotteryTicket, PointsEntry, PrizeStock
from tests.interactions.helpers import Env, campaign, open_env

AFTER_END = datetime(2026, 12, 2, tzinfo=UTC)
PLENTY = (Prize("cup", "保温杯", PrizeKind.PHYSICAL, weight=1, stock=100),)  # every draw wins
MIXED = (
    Prize("cup", "保温杯", PrizeKind.PHYSICAL, weight=10, stock=3),
    Prize("pts", "10积分", PrizeKind.POINTS, weight=15, stock=4, points=10),
    Prize("c", "满49减20券", PrizeKind.COUPON, weight=10, stock=5, pool="unbox_49_20"),
    Prize("none", "谢谢参与", PrizeKind.NONE, weight=65, stock=None),
)


@pytest.fixture
async def env(settings: Settings, clock: FrozenClock) -> AsyncIterator[Env]:
    async for e in open_env(settings, clock):
        yield e


async def batched(env: Env, customer_ids: list[int], campaign_id: str) -> list[DrawResult]:
    return list(await asyncio.gather(*(draw_batched(env.services, c, campaign_id, "h5") for c in customer_ids)))


async def verify(env: Env, campaign_id: str) -> tuple[int, str]:
    env.clock.set(AFTER_END)
    out = io.StringIO()
    code = await verify_command(env.settings, campaign_id, out, clock=env.clock, content=env.content)
    return code, out.getvalue()


async def batch(env: Env, campaign_id: str, customer_ids: list[int]) -> list[DrawOutcome]:
    requests = [DrawRequest(c, "h5") for c in customer_ids]
    return [r.outcome for r in await env.run(lambda ctx: draw_many(ctx, campaign_id, requests))]


@pytest.mark.parametrize("max_batch", [200, 37])
async def test_five_hundred_concurrent_batched_draws_on_ten_prizes_give_ten_winners_and_verify(
    env: Env, max_batch: int
) -> None:
    env.with_campaigns(campaign("b"))
    batcher_for(env.services).max_batch = max_batch
    customers = await env.customers(500)
    results = await batched(env, customers, "b")
    winners = [r for r in results if r.won]
    assert sorted(r.prize_id or "" for r in winners) == ["cup"] * 4 + ["pts"] * 6
    assert all(r.outcome is DrawOutcome.LOSE for r in results if not r.won)
    assert sorted(r.seq or 0 for r in results) == list(range(1, 501))
    assert await env.all(select(PrizeStock.remaining).where(PrizeStock.campaign_id == "b")) == [0, 0]
    assert await env.scalar(select(func.count()).where(Draw.campaign_id == "b", Draw.prize_id.is_not(None))) == 10
    assert await env.scalar(select(func.count()).where(PointsEntry.reason == "lottery")) == 6
    transactions = batcher_for(env.services).batches
    assert -(-500 // max_batch) <= transactions < 50  # batched: far fewer transactions than draws
    code, text = await verify(env, "b")
    assert code == 0 and "cup×4, pts×6" in text, text


async def test_batched_and_one_by_one_draws_of_a_campaign_interleave_exactly(env: Env) -> None:
    """A live stream's H5 taps (batched) and its chat keyword (one transaction each) share stock and seq."""
    env.with_campaigns(campaign("mix", prizes=MIXED))
    customers = await env.customers(240)
    alone = [env.run(lambda ctx, c=c: draw(ctx, c, "mix", "mp")) for c in customers[:40]]
    together = [draw_batched(env.services, c, "mix", "h5") for c in customers[40:]]
    results: list[DrawResult] = list(await asyncio.gather(*alone, *together))
    assert sorted(r.seq or 0 for r in results) == list(range(1, 241))
    won = sorted(r.prize_id or "" for r in results if r.won)
    assert won == ["c"] * 5 + ["cup"] * 3 + ["pts"] * 4  # 240 draws at 35%: every stock runs out
    codes = [r.coupon_code for r in results if r.prize_id == "c"]
    assert len(set(codes)) == 5 and None not in codes
    code, text = await verify(env, "mix")
    assert code == 0 and "c×5, cup×3, pts×4" in text, text


async def test_a_one_draw_customer_tapping_fifty_times_in_one_batch_gets_one(env: Env) -> None:
    env.with_campaigns(campaign("once", per_day=1, total=1))
    [cid] = await env.customers(1)
    results = await batched(env, [cid] * 50, "once")
    assert [r.outcome for r in results].count(DrawOutcome.LIMIT_REACHED) == 49
    assert batcher_for(env.services).batches == 1
    assert await env.scalar(select(func.count()).where(Draw.customer_id == cid)) == 1
    assert await env.scalar(select(func.count()).where(LotteryTicket.customer_id == cid)) == 1


async def test_limits_inside_a_batch_count_the_batch_and_follow_local_days(env: Env) -> None:
    env.with_campaigns(campaign("daily", prizes=PLENTY, per_day=2, total=3))
    a, b = await env.customers(2)
    first = await batch(env, "daily", [a, b, a, a, b])
    assert first == [DrawOutcome.WIN, DrawOutcome.WIN, DrawOutcome.WIN, DrawOutcome.LIMIT_REACHED, DrawOutcome.WIN]
    env.clock.advance(86400)
    second = await batch(env, "daily", [a, a, b])
    assert second == [DrawOutcome.WIN, DrawOutcome.LIMIT_REACHED, DrawOutcome.WIN]  # a: total 3 reached
    refs = await env.all(select(LotteryTicket.ref).where(LotteryTicket.customer_id == a).order_by(LotteryTicket.id))
    assert refs == ["a:2026-11-23:1", "a:2026-11-23:2", "a:2026-11-24:1"]


async def test_bonus_tickets_are_used_first_inside_a_batch(env: Env) -> None:
    env.with_campaigns(campaign("bonus", prizes=PLENTY, per_day=1, total=1))
    [cid] = await env.customers(1)
    for ref in ("m7", "m14"):
        assert await env.run(lambda ctx, ref=ref: grant_ticket(ctx, "bonus", cid, ref))
    outcomes = await batch(env, "bonus", [cid] * 4)
    assert outcomes == [DrawOutcome.WIN] * 3 + [DrawOutcome.LIMIT_REACHED]
    refs = await env.all(select(LotteryTicket.ref).where(LotteryTicket.customer_id == cid))
    assert sorted(refs) == ["a:2026-11-23:1", "bonus:m14", "bonus:m7"]
    unused = select(func.count()).where(LotteryTicket.customer_id == cid, LotteryTicket.used_at.is_(None))
    assert await env.scalar(unused) == 0


async def test_points_cost_is_paid_per_draw_inside_a_batch(env: Env) -> None:
    cups = (Prize("cup", "保温杯", PrizeKind.PHYSICAL, weight=1, stock=5),)
    env.with_campaigns(campaign("paid", prizes=cups, points_cost=10))
    rich, poor = await env.customers(2)
    await env.run(lambda ctx: award(ctx, rich, 25, "gift", "g"))
    outcomes = await batch(env, "paid", [rich, poor, rich, rich])
    assert outcomes == [DrawOutcome.WIN, DrawOutcome.NO_POINTS, DrawOutcome.WIN, DrawOutcome.NO_POINTS]
    assert await env.run(lambda ctx: balance(ctx, rich)) == 5
    assert await env.scalar(select(func.count()).where(LotteryTicket.campaign_id == "paid")) == 2  # refused: none
    assert [r.seq for r in await env.all(select(Draw).order_by(Draw.seq))] == [1, 2]


async def test_the_issuance_alarm_stops_a_batch_at_the_draw_that_trips_it(env: Env) -> None:
    env.with_campaigns(campaign("fast", prizes=PLENTY, alarm_per_hour=3))
    customers = await env.customers(6)
    assert await batch(env, "fast", customers) == [DrawOutcome.WIN] * 4 + [DrawOutcome.NOT_OPEN] * 2
    state = await env.scalar(select(LotteryCampaignState).where(LotteryCampaignState.campaign_id == "fast"))
    assert state.killed and "4 prizes in the last hour > alarm_per_hour 3" in state.killed_reason
    assert await env.scalar(select(func.count()).where(LotteryTicket.campaign_id == "fast")) == 4
    assert [r.seq for r in await env.all(select(Draw).order_by(Draw.seq))] == [1, 2, 3, 4]
    assert await batch(env, "fast", customers[4:]) == [DrawOutcome.NOT_OPEN] * 2


async def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_runs(env: Env) -> None:
    env.with_campaigns(campaign("f", prizes=PLENTY))
    customers = await env.customers(3)
    batcher = batcher_for(env.services)
    missing = max(customers) + 1000  # no such customer: its ticket breaks the foreign key, the batch rolls back
    outcomes = await asyncio.gather(
        *(batcher.draw(c, "f", "h5") for c in [*customers, missing]), return_exceptions=True
    )
    assert all(isinstance(o, IntegrityError) for o in outcomes)
    assert await env.scalar(select(func.count()).where(Draw.campaign_id == "f")) == 0
    again = await batched(env, customers, "f")
    assert [r.seq for r in again] == [1, 2, 3] and all(r.won for r in again)


async def test_a_none_prize_of_weight_zero_makes_every_draw_win_until_the_stock_runs_out(env: Env) -> None:
    prizes = (
        Prize("cup", "保温杯", PrizeKind.PHYSICAL, weight=1, stock=3),
        Prize("none", "谢谢参与", PrizeKind.NONE, weight=0, stock=None),
    )
    env.with_campaigns(campaign("all", prizes=prizes))
    results = await batched(env, await env.customers(5), "all")
    assert [r.outcome for r in sorted(results, key=lambda r: r.seq or 0)] == [DrawOutcome.WIN] * 3 + [
        DrawOutcome.LOSE
    ] * 2
    code, text = await verify(env, "all")
    assert code == 0 and "winners recomputed: cup×3" in text, text


async def test_eligibility_is_decided_per_customer_inside_one_batch(env: Env) -> None:
    rule = Eligibility(tags=("会员/金卡",), must_follow_mp=True, channels=("pkgcard",))
    env.with_campaigns(dataclasses.replace(campaign("vip", prizes=PLENTY), eligibility=rule))
    [touched, first, untagged, no_channel] = await env.customers(4, mp_follower=True)
    [stranger] = await env.customers(1)
    await env.run(
        lambda ctx: ctx.session.execute(update(Customer).where(Customer.id == first).values(first_channel="pkgcard"))
    )
    now = env.clock.now()
    async with env.sessions() as s, s.begin():
        for cid in (touched, first, no_channel, stranger):
            await s.execute(
                insert(CustomerTag).values(customer_id=cid, tag="会员/金卡", source="operator", created_at=now)
            )
        for cid in (touched, untagged, stranger):
            touch = {"channel_code": "pkgcard", "platform": "mp", "action": "scanned", "occurred_at": now}
            await s.execute(insert(Touch).values(customer_id=cid, **touch))
    outcomes = await batch(env, "vip", [touched, first, untagged, no_channel, stranger, touched])
    assert outcomes == [DrawOutcome.WIN, DrawOutcome.WIN] + [DrawOutcome.NOT_ELIGIBLE] * 3 + [DrawOutcome.WIN]
