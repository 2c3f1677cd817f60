"""Start the real app (build_app) in-process for a test, and read what it stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import SERVICES, Services, build_app
from bot.clock import Clock
from bot.config import Settings
from bot.db.models import OutboxCall, Receipt
from bot.dispatcher import Router
from handlers import features

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


class RunningBot:
    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.services: Services = client.app[SERVICES]  # type: ignore[index]

    async def settle(self) -> None:
        """Wait until dispatched handlers have finished."""
        assert self.services.dispatcher is not None
        await self.services.dispatcher.drain(10)

    async def count(self, model: Any, *where: Any) -> int:
        assert self.services.sessions is not None
        async with self.services.sessions() as s:
            return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())

    async def receipts(self) -> list[Receipt]:
        assert self.services.sessions is not None
        async with self.services.sessions() as s:
            return list((await s.scalars(select(Receipt).order_by(Receipt.id))).all())

    async def outbox(self) -> list[OutboxCall]:
        assert self.services.sessions is not None
        async with self.services.sessions() as s:
            return list((await s.scalars(select(OutboxCall).order_by(OutboxCall.id))).all())


async def start_bot(
    aiohttp_client: ClientFactory, settings: Settings, clock: Clock, routers: Iterable[Router] | None = None
) -> RunningBot:
    app = build_app(settings, features(), clock=clock, routers=routers)
    return RunningBot(await aiohttp_client(app))
