"""`siyu-bot lottery verify`: every winner reproduces from the revealed seed; tampering is caught."""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update

from bot.clock import FrozenClock
from bot.config import Settings
from handlers.interactions.content.model import Prize, PrizeKind
from handlers.interactions.lottery.admin import verify_command
from handlers.interactions.lottery.draw import draw
from handlers.interactions.lottery.verifiable import DrawRecord, PrizeTable, choose, replay, roll_for, seed_hash
from handlers.interactions.tables import Draw, LotteryCampaignState
from tests.interactions.helpers import SEED, Env, campaign, open_env

PRIZES = (
    Prize("cup", "保温杯", PrizeKind.PHYSICAL, weight=10, stock=3),
    Prize("pts", "10积分", PrizeKind.POINTS, weight=15, stock=4, points=10),
    Prize("none", "谢谢参与", PrizeKind.NONE, weight=75, stock=None),
)
AFTER_END = datetime(2026, 12, 2, tzinfo=UTC)


@pytest.fixture
async def env(settings: Settings, clock: FrozenClock) -> AsyncIterator[Env]:
    async for e in open_env(settings, clock):
        e.with_campaigns(campaign("v", prizes=PRIZES))
        yield e


async def finished_campaign(env: Env, n: int = 80) -> list[str | None]:
    await env.seed("v")
    customers = await env.customers(n)
    won = [(await env.run(lambda ctx, c=c: draw(ctx, c, "v", "h5"))).prize_id for c in customers]
    env.clock.set(AFTER_END)
    return won


async def verify(env: Env) -> tuple[int, str]:
    out = io.StringIO()
    code = await verify_command(env.settings, "v", out, clock=env.clock, content=env.content)
    return code, out.getvalue()


async def test_verify_reveals_the_seed_and_reproduces_every_winner(env: Env) -> None:
    won = await finished_campaign(env)
    assert sum(w is not None for w in won) == 7  # stock runs out: the later choices of a prize lose
    code, text = await verify(env)
    assert code == 0, text
    assert f"seed: {SEED}" in text and f"seed_sha256 (published): {seed_hash(SEED)}" in text
    assert "winners recomputed: cup×3, pts×4" in text and "OK" in text
    state = await env.scalar(select(LotteryCampaignState).where(LotteryCampaignState.campaign_id == "v"))
    assert state.revealed_at == AFTER_END


@pytest.mark.parametrize("tamper", ["prize", "roll", "deleted", "seed"])
async def test_verify_detects_a_tampered_draw(env: Env, tamper: str) -> None:
    await finished_campaign(env)
    async with env.sessions() as s, s.begin():
        loser = await s.scalar(select(Draw).where(Draw.campaign_id == "v", Draw.prize_id.is_(None)).order_by(Draw.seq))
        assert loser is not None
        if tamper == "prize":
            loser.prize_id = "cup"
        elif tamper == "roll":
            loser.roll = "0" * 64
        elif tamper == "deleted":
            await s.execute(delete(Draw).where(Draw.id == loser.id))
        else:
            await s.execute(update(LotteryCampaignState).values(seed="f" * 64))
    code, text = await verify(env)
    assert code == 1 and "MISMATCH" in text and "FAILED" in text


async def test_the_seed_stays_secret_while_the_campaign_runs(env: Env) -> None:
    await env.seed("v")
    code, text = await verify(env)
    assert code == 2 and SEED not in text


def test_roll_is_hmac_sha256_of_the_published_message() -> None:
    expected = hmac.new(SEED.encode(), b"v:12:345", hashlib.sha256).hexdigest()
    assert roll_for(SEED, "v", 12, 345) == expected
    assert seed_hash(SEED) == hashlib.sha256(SEED.encode()).hexdigest()


def test_choose_follows_the_weights() -> None:
    weights = (("a", 1), ("zero", 0), ("b", 3))
    counts = {"a": 0, "b": 0}
    for i in range(4000):
        counts[choose(roll_for(SEED, "w", i, i), weights)] += 1
    assert 800 < counts["a"] < 1200 and counts["a"] + counts["b"] == 4000
    assert choose("0" * 64, weights) == "a" and choose(f"{3:064x}", weights) == "b"


def test_replay_gives_a_prize_only_while_stock_lasts() -> None:
    table = PrizeTable((("a", 1),), frozenset(), {"a": 1})
    draws = [DrawRecord(i, i, roll_for(SEED, "r", i, i), "a" if i == 1 else None) for i in (1, 2)]
    assert replay(SEED, "r", draws, table).ok
    swapped = [DrawRecord(1, 1, draws[0].roll, None), DrawRecord(2, 2, draws[1].roll, "a")]
    assert not replay(SEED, "r", swapped, table).ok
