"""Operator commands behind ``siyu-bot lottery status | kill | resume | verify``, each a query (:func:`campaign_report`,
:func:`verify_campaign`; the admin API shares them) and a printer.

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
from bot.db.engine import make_engine, sessionmaker
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import Campaign, PrizeKind
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


async def _content(settings: Settings, content: Content | None) -> Content:
    from handlers.content import live_content

    return content if content is not None else await live_content(settings)


async def status_command(
    settings: Settings, out: TextIO, *, clock: Clock | None = None, content: Content | None = None
) -> int:
    content = await _content(settings, content)
    now = (clock or SystemClock()).now()
    if not interactions_of(content).campaigns:
        print("(no lottery campaigns in content)", file=out)
    async with _session(settings) as s:
        for campaign in interactions_of(content).campaigns:
            await _print_campaign(s, content, campaign, now, out)
        for pool in interactions_of(content).coupon_pools:
            free_codes = select(func.count()).where(CouponCode.pool_id == pool.id, CouponCode.issued_at.is_(None))
            free = await s.scalar(free_codes)
            print(f"coupon pool {pool.id}: {free} unissued in the database, {pool.size} in the CSV", file=out)
    return 0


@dataclass(frozen=True, slots=True)
class StockLeft:
    prize_id: str
    remaining: int
    initial: int


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """What ``lottery status`` shows of one campaign (and ``GET /api/v1/lottery/campaigns``)."""

    id: str
    name: str
    starts_at: datetime
    ends_at: datetime
    enabled: bool  # in content
    state: str  # open | closed | killed
    killed_reason: str | None
    seed_sha256: str | None  # None until the state exists (``lottery status`` or the first draw)
    revealed_at: datetime | None
    draws: int
    stock: list[StockLeft]


async def campaign_report(
    s: AsyncSession, campaign: Campaign, state: LotteryCampaignState | None, now: datetime
) -> CampaignReport:
    """Read one campaign's figures; ``state`` as :func:`campaign_state` or :func:`ensure_campaign` gave it."""
    where = "open" if campaign.is_open(now) else "closed"
    killed = state is not None and state.killed
    draws = await s.scalar(select(func.count()).where(Draw.campaign_id == campaign.id))
    stock = (await s.scalars(select(PrizeStock).where(PrizeStock.campaign_id == campaign.id))).all()
    return CampaignReport(
        campaign.id,
        campaign.name,
        campaign.starts_at,
        campaign.ends_at,
        campaign.enabled,
        "killed" if killed else where,
        state.killed_reason if state is not None and killed else None,
        state.seed_sha256 if state is not None else None,
        state.revealed_at if state is not None else None,
        int(draws or 0),
        [StockLeft(r.prize_id, r.remaining, r.initial) for r in stock],
    )


async def _print_campaign(s: AsyncSession, content: Content, campaign: Campaign, now: datetime, out: TextIO) -> None:
    state = await ensure_campaign(s, content, campaign, now)  # creates it (and its seed) on first sight
    report = await campaign_report(s, campaign, state, now)
    where = f"killed: {report.killed_reason or ''}" if report.state == "killed" else report.state
    window = f"{campaign.starts_at.isoformat()} → {campaign.ends_at.isoformat()}"
    revealed = f" (revealed {report.revealed_at.isoformat()})" if report.revealed_at else ""
    print(f"{campaign.id} 「{campaign.name}」 {window}", file=out)
    print(f"  state: {where}; enabled in content: {campaign.enabled}", file=out)
    print(f"  seed_sha256: {report.seed_sha256}{revealed}", file=out)
    print(f"  draws: {report.draws}", file=out)
    for stock in report.stock:
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
    content = await _content(settings, content)
    campaign = interactions_of(content).campaign(campaign_id)
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
        verification = await verify_campaign(s, campaign, now)
    if verification is None:
        print(f"{campaign_id}: no draws were ever made (no state)", file=out)
        return 0
    print(
        f"campaign: {campaign_id}\nseed: {verification.seed}\nseed_sha256 (published): {verification.seed_sha256}",
        file=out,
    )
    winners = ", ".join(f"{k}×{v}" for k, v in sorted(verification.winners.items())) or "none"
    print(f"draws: {verification.draws}; winners recomputed: {winners}", file=out)
    for problem in verification.mismatches:
        print(f"MISMATCH {problem}", file=out)
    verdict = "OK: every draw reproduces from the published seed"
    print(verdict if verification.ok else f"FAILED: {len(verification.mismatches)} mismatch(es)", file=out)
    return 0 if verification.ok else 1


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of ``lottery verify``: the revealed seed, and every difference between replay and storage."""

    campaign_id: str
    seed: str
    seed_sha256: str
    draws: int
    winners: dict[str, int]  # prize → draws that won it, recomputed
    mismatches: list[str]

    @property
    def ok(self) -> bool:
        return not self.mismatches


async def verify_campaign(s: AsyncSession, campaign: Campaign, now: datetime) -> Verification | None:
    """Reveal the seed (the campaign must have ended) and recompute every draw; None when it has no state."""
    published = await _reveal(s, campaign, now)
    if published is None:
        return None
    result = replay(published.seed, campaign.id, published.draws, _table(campaign, published.initial))
    if seed_hash(published.seed) != published.seed_sha256:
        result.mismatches.insert(0, f"seed hash {seed_hash(published.seed)} != published {published.seed_sha256}")
    for prize_id, stored in sorted(published.remaining.items()):
        if result.remaining.get(prize_id) != stored:
            replayed = result.remaining.get(prize_id)
            result.mismatches.append(f"prize {prize_id}: stored stock {stored} != replayed {replayed}")
    return Verification(
        campaign.id, published.seed, published.seed_sha256, len(published.draws), dict(result.winners),
        list(result.mismatches),
    )  # fmt: skip


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
