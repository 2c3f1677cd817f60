"""Helpers for check-in, points, lottery (and H5) tests: a real migrated database, one transaction per call.

Every call runs through :func:`bot.actions.run_action` — its own session and transaction, as an
H5 request does — so ``asyncio.gather`` of many calls is real concurrency on the database.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.actions import run_action
from bot.clock import FrozenClock
from bot.config import Settings
from bot.content import Content
from bot.context import Context
from bot.db.engine import make_engine, sessionmaker
from bot.db.models import Customer
from bot.services import Services
from handlers.content import load_content
from handlers.interactions.content import interactions_of
from handlers.interactions.content.lottery import CAMPAIGNS
from handlers.interactions.content.model import Campaign, Eligibility, Prize, PrizeKind
from handlers.interactions.lottery.state import ensure_campaign
from tests.support.settings import SHIPPED_CONTENT

T = TypeVar("T")
SEED = "5eed" * 16  # a fixed 64-hex-character seed for tests
H5_SECRET = "h5-test-session-secret-0123456789abcdef"  # server.session_secret of the H5 tests


@dataclass
class Env:
    """A real :class:`~bot.services.Services` on a migrated database (no server), plus content to swap."""

    settings: Settings
    clock: FrozenClock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    content: Content
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    services: Services = field(init=False)

    def __post_init__(self) -> None:
        self.services = Services(self.settings, self.clock, self.rng, self.content)
        self.services.sessions = self.sessions

    async def run(self, fn: Callable[[Context], Awaitable[T]]) -> T:
        self.services.content = self.content
        return await run_action(self.services, fn)

    async def scalar(self, query: Any) -> Any:
        async with self.sessions() as s:
            return await s.scalar(query)

    async def all(self, query: Any) -> list[Any]:
        async with self.sessions() as s:
            return list((await s.scalars(query)).all())

    async def customers(self, n: int, **values: Any) -> list[int]:
        now = self.clock.now()
        rows = [{"openid": f"o-{uuid.uuid4().hex}", "created_at": now, "updated_at": now, **values} for _ in range(n)]
        async with self.sessions() as s, s.begin():
            await s.execute(insert(Customer), rows)
            found = await s.scalars(select(Customer.id).where(Customer.openid.in_([r["openid"] for r in rows])))
            return sorted(found.all())

    def with_campaigns(self, *campaigns: Campaign) -> None:
        """Replace the content's campaigns (the real pools and check-in stay)."""
        sections = {**self.content.sections, CAMPAIGNS.key: tuple(campaigns)}
        self.content = Content(self.content.root, MappingProxyType(sections), self.content.files)
        self.services.content = self.content

    async def seed(self, campaign_id: str, seed: str = SEED) -> None:
        campaign = interactions_of(self.content).campaign(campaign_id)
        assert campaign is not None
        await self.run(lambda ctx: ensure_campaign(ctx.session, self.content, campaign, self.clock.now(), lambda: seed))


async def open_env(settings: Settings, clock: FrozenClock) -> AsyncIterator[Env]:
    """Use as ``async for env in open_env(settings, clock): yield env`` in a fixture."""
    engine = make_engine(settings.database)
    env = Env(settings, clock, engine, sessionmaker(engine), load_content(SHIPPED_CONTENT))
    try:
        yield env
    finally:
        await env.engine.dispose()


def campaign(
    campaign_id: str = "t",
    prizes: tuple[Prize, ...] | None = None,
    **changes: Any,
) -> Campaign:
    """An open test campaign: 10 units of stock over two prizes that every draw picks."""
    base = Campaign(
        id=campaign_id,
        name="测试抽奖",
        enabled=True,
        starts_at=datetime(2026, 11, 1, tzinfo=UTC),
        ends_at=datetime(2026, 12, 1, tzinfo=UTC),
        eligibility=Eligibility(),
        per_day=None,
        total=None,
        points_cost=0,
        prizes=prizes
        or (
            Prize("cup", "保温杯", PrizeKind.PHYSICAL, weight=3, stock=4),
            Prize("pts", "10积分", PrizeKind.POINTS, weight=2, stock=6, points=10),
        ),
        alarm_per_hour=None,
        replies=MappingProxyType({}),
    )
    return dataclasses.replace(base, **changes)
