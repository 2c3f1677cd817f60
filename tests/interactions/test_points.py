"""Points ledger: idempotent awards, conditional spends, balance == sum(ledger) under concurrency."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from handlers.interactions.points import award, balance, spend
from handlers.interactions.tables import PointsBalance, PointsEntry
from tests.interactions.helpers import Env, open_env


@pytest.fixture
async def env(settings: Settings, clock: FrozenClock) -> AsyncIterator[Env]:
    async for e in open_env(settings, clock):
        yield e


async def ledger_sum(env: Env, customer_id: int) -> int:
    return int(
        await env.scalar(
            select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(PointsEntry.customer_id == customer_id)
        )
    )


async def test_award_is_idempotent_per_ref_and_moves_the_balance(env: Env) -> None:
    [cid] = await env.customers(1)
    assert await env.run(lambda ctx: award(ctx, cid, 5, "checkin", "checkin:2026-11-23"))
    assert not await env.run(lambda ctx: award(ctx, cid, 5, "checkin", "checkin:2026-11-23"))
    assert await env.run(lambda ctx: award(ctx, cid, 7, "checkin", "checkin:2026-11-24"))
    assert await env.run(lambda ctx: balance(ctx, cid)) == 12 == await ledger_sum(env, cid)


async def test_spend_needs_the_balance_and_writes_the_ledger_only_when_it_succeeds(env: Env) -> None:
    [cid] = await env.customers(1)
    assert not await env.run(lambda ctx: spend(ctx, cid, 1, "lottery", "s0"))  # no balance row at all
    await env.run(lambda ctx: award(ctx, cid, 10, "gift", "g1"))
    assert not await env.run(lambda ctx: spend(ctx, cid, 11, "lottery", "s1"))
    assert await env.run(lambda ctx: spend(ctx, cid, 10, "lottery", "s2"))
    assert not await env.run(lambda ctx: spend(ctx, cid, 1, "lottery", "s3"))
    refs = await env.all(select(PointsEntry.ref).where(PointsEntry.customer_id == cid).order_by(PointsEntry.id))
    assert refs == ["g1", "s2"]
    assert await env.run(lambda ctx: balance(ctx, cid)) == 0 == await ledger_sum(env, cid)


async def test_spending_the_same_ref_twice_takes_the_points_once(env: Env) -> None:
    [cid] = await env.customers(1)
    await env.run(lambda ctx: award(ctx, cid, 30, "gift", "g1"))
    results = await asyncio.gather(*(env.run(lambda ctx: spend(ctx, cid, 10, "lottery", "same")) for _ in range(8)))
    assert sum(results) == 1
    assert await env.run(lambda ctx: balance(ctx, cid)) == 20 == await ledger_sum(env, cid)


async def test_balance_equals_the_ledger_under_concurrent_awards_and_spends(env: Env) -> None:
    cids = await env.customers(3)
    rnd = random.Random(11)
    ops = []
    for i in range(150):
        cid = rnd.choice(cids)
        if rnd.random() < 0.5:
            ops.append(env.run(lambda ctx, c=cid, i=i: award(ctx, c, rnd.randint(1, 9), "t", f"a{i % 120}")))
        else:
            ops.append(env.run(lambda ctx, c=cid, i=i: spend(ctx, c, rnd.randint(1, 9), "t", f"s{i}")))
    await asyncio.gather(*ops)
    for cid in cids:
        stored = await env.scalar(select(PointsBalance.balance).where(PointsBalance.customer_id == cid))
        assert (stored or 0) == await ledger_sum(env, cid)
        assert (stored or 0) >= 0
