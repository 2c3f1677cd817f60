"""Operator commands behind ``siyu-bot lottery status | kill | resume | verify``.

- ``status``: every campaign in content with its window, state, published ``seed_sha256``, draws, winners,
  stock and coupon codes left. It creates missing campaign states, so running it before a campaign opens
  is how the seed hash gets published.
- ``kill CAMPAIGN --reason`` / ``resume CAMPAIGN``: the database kill switch (content ``enabled = false``
  is the other one). The issuance-rate alarm sets the same switch.
- ``verify CAMPAIGN``: only after ``ends_at``. Reveals the seed (``revealed_at``), prints it and its hash,
  checks the hash against the published one, then recomputes every draw in ``seq`` order — roll, prize
  choice and stock (:func:`handlers.interactions.lottery.verifiable.replay`) —
  and compares with what was stored. Exit 1 on any
  mismatch, 2 when the campaign is unknown or not finished.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.content import Content
from bot.content.interactions_model import Campaign, PrizeKind
from bot.db.engine import make_engine, sessionmaker
from handlers.interactions.lottery.state import campaign_state, ensure_campaign, set_killed
from handlers.interactions.lottery.verifiable import DrawRecord, PrizeTable, replay, seed_hash
from handlers.interactions.tables import CouponCode, Draw, LotteryCampaignState, PrizeStock


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    engine = make_engine(settings.database)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


def _content(settings: Settings, content: Content | None) -> Content:
    from bot.content_runtime import load_runtime_content

    return content if content is not None else load_runtime_content(settings.content_dir)


async def status_command(
    settings: Settings, out: TextIO, *, clock: Clock | None = None, content: Content | None = None
) -> int:
    content = _content(settings, content)
    now = (clock or SystemClock()).now()
    if not content.campaigns:
        print("(no lottery campaigns in content)", file=out)
    async with _session(settings) as s:
        for campaign in content.campaigns:
            await _print_campaign(s, content, campaign, now, out)
        for pool in content.coupon_pools:
            free_codes = select(func.count()).where(CouponCode.pool_id == pool.id, CouponCode.issued_at.is_(None))
            free = await s.scalar(free_codes)
            print(f"coupon pool {pool.id}: {free} unissued in the database, {pool.size} in the CSV", file=out)
    return 0


async def _print_campaign(s: AsyncSession, content: Content, campaign: Campaign, now: datetime, out: TextIO) -> None:
    state = await ensure_campaign(s, content, campaign, now)  # creates it (and its seed) on first sight
    where = "open" if campaign.is_open(now) else "closed"
    where = f"killed: {state.killed_reason or ''}" if state.killed else where
    window = f"{campaign.starts_at.isoformat()} → {campaign.ends_at.isoformat()}"
    revealed = f" (revealed {state.revealed_at.isoformat()})" if state.revealed_at else ""
    print(f"{campaign.id} 「{campaign.name}」 {window}", file=out)
    print(f"  state: {where}; enabled in content: {campaign.enabled}", file=out)
    print(f"  seed_sha256: {state.seed_sha256}{revealed}", file=out)
    draws = await s.scalar(select(func.count()).where(Draw.campaign_id == campaign.id))
    print(f"  draws: {draws}", file=out)
    for stock in (await s.scalars(select(PrizeStock).where(PrizeStock.campaign_id == campaign.id))).all():
        print(f"  prize {stock.prize_id}: {stock.remaining}/{stock.initial} left", file=out)


async def kill_command(settings: Settings, campaign_id: str, reason: str, out: TextIO, *, resume: bool = False) -> int:
    async with _session(settings) as s:
        if await campaign_state(s, campaign_id) is None:
            print(f"error: campaign {campaign_id!r} has no state yet (run `siyu-bot lottery status`)", file=out)
            return 2
        changed = await set_killed(s, campaign_id, not resume, None if resume else reason)
    verb = "resumed" if resume else "killed"
    print(f"{campaign_id}: {verb}" if changed else f"{campaign_id}: already {verb}", file=out)
    return 0


async def verify_command(
    settings: Settings, campaign_id: str, out: TextIO, *, clock: Clock | None = None, content: Content | None = None
) -> int:
    content = _content(settings, content)
    campaign = content.campaign(campaign_id)
    now = (clock or SystemClock()).now()
    if campaign is None:
        print(f"error: no campaign {campaign_id!r} in content", file=out)
        return 2
    if now < campaign.ends_at:
        print(
            f"error: {campaign_id} runs until {campaign.ends_at.isoformat()}; the seed stays secret until then",
            file=out,
        )
        return 2
    async with _session(settings) as s:
        published = await _reveal(s, campaign, now)
    if published is None:
        print(f"{campaign_id}: no draws were ever made (no state)", file=out)
        return 0
    print(
        f"campaign: {campaign_id}\nseed: {published.seed}\nseed_sha256 (published): {published.seed_sha256}", file=out
    )
    result = replay(published.seed, campaign_id, published.draws, _table(campaign, published.initial))
    if seed_hash(published.seed) != published.seed_sha256:
        result.mismatches.insert(0, f"seed hash {seed_hash(published.seed)} != published {published.seed_sha256}")
    for prize_id, stored in sorted(published.remaining.items()):
        if result.remaining.get(prize_id) != stored:
            replayed = result.remaining.get(prize_id)
            result.mismatches.append(f"prize {prize_id}: stored stock {stored} != replayed {replayed}")
    winners = ", ".join(f"{k}×{v}" for k, v in sorted(result.winners.items())) or "none"
    print(f"draws: {len(published.draws)}; winners recomputed: {winners}", file=out)
    for problem in result.mismatches:
        print(f"MISMATCH {problem}", file=out)
    verdict = "OK: every draw reproduces from the published seed"
    print(verdict if result.ok else f"FAILED: {len(result.mismatches)} mismatch(es)", file=out)
    return 0 if result.ok else 1


@dataclass(frozen=True, slots=True)
class _Published:
    seed: str
    seed_sha256: str
    draws: list[DrawRecord]
    initial: dict[str, int]
    remaining: dict[str, int]


async def _reveal(s: AsyncSession, campaign: Campaign, now: datetime) -> _Published | None:
    """Mark the seed revealed (first time only) and read everything the replay needs."""
    state = await campaign_state(s, campaign.id)
    if state is None:
        return None
    await s.execute(
        update(LotteryCampaignState)
        .where(LotteryCampaignState.campaign_id == campaign.id, LotteryCampaignState.revealed_at.is_(None))
        .values(revealed_at=now)
    )
    stock = (await s.scalars(select(PrizeStock).where(PrizeStock.campaign_id == campaign.id))).all()
    query = select(Draw.seq, Draw.ticket_id, Draw.roll, Draw.prize_id).where(Draw.campaign_id == campaign.id)
    draws = [DrawRecord(int(r.seq), int(r.ticket_id), r.roll, r.prize_id) for r in (await s.execute(query)).all()]
    initial = {r.prize_id: r.initial for r in stock}
    return _Published(state.seed, state.seed_sha256, draws, initial, {r.prize_id: r.remaining for r in stock})


def _table(campaign: Campaign, initial: dict[str, int]) -> PrizeTable:
    weights = tuple((p.id, p.weight) for p in campaign.prizes)
    no_prize = frozenset(p.id for p in campaign.prizes if p.kind is PrizeKind.NONE)
    return PrizeTable(weights, no_prize, initial)
