"""Runtime state of lottery campaigns: the committed seed, prize stock rows, coupon pools, the kill switch.

A campaign's state is created on first use (the first draw, or ``siyu-bot lottery status`` which operators
run to publish ``seed_sha256`` before the campaign opens): a seed from
:func:`handlers.interactions.lottery.verifiable.new_seed`
(``secrets``; tests pass their own ``new_seed``), one ``prize_stock`` row per stocked prize with the stock
from handlers.interactions.content import interactions_of
from content, and the codes of every coupon pool its prizes use. Concurrent first uses are safe: every row
is written with ``INSERT … ON CONFLICT DO NOTHING`` and read back, so all of them see the same seed.

Changing a campaign's prizes, weights or stock after it opened makes ``lottery verify`` fail: the published
hash commits to the seed, and the verifier replays draws against the prize table in content.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content import Content
from bot.db.upsert import insert_ignore
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import Campaign, CouponPool, PrizeKind
from handlers.interactions.lottery.verifiable import new_seed as default_seed
from handlers.interactions.lottery.verifiable import seed_hash
from handlers.interactions.tables import CouponCode, LotteryCampaignState, PrizeStock

SeedSource = Callable[[], str]
_IMPORT_CHUNK = 1000  # rows per INSERT (PostgreSQL allows 32,767 bind parameters per statement)


async def campaign_state(session: AsyncSession, campaign_id: str) -> LotteryCampaignState | None:
    found: LotteryCampaignState | None = await session.scalar(
        select(LotteryCampaignState).where(LotteryCampaignState.campaign_id == campaign_id)
    )
    return found


async def ensure_campaign(
    session: AsyncSession, content: Content, campaign: Campaign, now: datetime, new_seed: SeedSource = default_seed
) -> LotteryCampaignState:
    """The campaign's state, created with a fresh seed, its stock rows and its coupon codes if missing."""
    state = await campaign_state(session, campaign.id)
    if state is not None:
        return state
    seed = new_seed()
    row = {"campaign_id": campaign.id, "seed_sha256": seed_hash(seed), "seed": seed, "killed": False, "created_at": now}
    await insert_ignore(session, LotteryCampaignState, row, ["campaign_id"])
    await sync_stock(session, campaign)
    for pool_id in {p.pool for p in campaign.prizes if p.kind is PrizeKind.COUPON and p.pool}:
        pool = interactions_of(content).coupon_pool(pool_id)
        if pool is not None:
            await import_pool(session, pool)
    state = await campaign_state(session, campaign.id)
    assert state is not None
    return state


async def sync_stock(session: AsyncSession, campaign: Campaign) -> None:
    """A stock row for every stocked prize that has none yet (existing rows are never reset)."""
    for prize in campaign.prizes:
        if prize.kind is not PrizeKind.NONE and prize.stock is not None:
            row = {"campaign_id": campaign.id, "prize_id": prize.id, "initial": prize.stock, "remaining": prize.stock}
            await insert_ignore(session, PrizeStock, row, ["campaign_id", "prize_id"])


async def import_pool(session: AsyncSession, pool: CouponPool) -> int:
    """Copy the pool's CSV codes into ``coupon_codes`` (codes already there, issued or not, are kept)."""
    insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    added = 0
    codes = list(pool.codes)
    for start in range(0, len(codes), _IMPORT_CHUNK):
        rows = [{"pool_id": pool.id, "code": code} for code in codes[start : start + _IMPORT_CHUNK]]
        stmt = insert(CouponCode).values(rows).on_conflict_do_nothing(index_elements=["pool_id", "code"])
        result = await session.execute(stmt)
        added += max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]
    return added


async def set_killed(session: AsyncSession, campaign_id: str, killed: bool, reason: str | None) -> bool:
    """Flip the kill switch; True if it changed (a campaign already in that state is left alone)."""
    result = await session.execute(
        update(LotteryCampaignState)
        .where(LotteryCampaignState.campaign_id == campaign_id, LotteryCampaignState.killed.is_(not killed))
        .values(killed=killed, killed_reason=reason)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def lock_campaign(session: AsyncSession, campaign_id: str) -> str | None:
    """Take the campaign's row lock for the rest of the transaction and return its seed; None when the
    campaign is killed or has no state yet.

    Every draw of a campaign passes through here before it picks ``seq`` and takes stock, so ``seq``
    order is commit order and stock replays exactly. On SQLite this is the write lock itself.
    """
    result = await session.execute(
        update(LotteryCampaignState)
        .where(LotteryCampaignState.campaign_id == campaign_id, LotteryCampaignState.killed.is_(False))
        .values(killed=LotteryCampaignState.killed)
        .returning(LotteryCampaignState.seed)
    )
    return result.scalar_one_or_none()
