"""The one place tests build the app — with every feature (``handlers.features()``), as ``siyu-bot serve``.

Two ways to run it:

- :func:`start_bot`: in-process behind pytest-aiohttp's test client (``aiohttp_client``), for tests at
  the transport level (signed callbacks in, receipts and outbox rows out; no simulator).
- :func:`start_rig`: :class:`bot.rig.Rig`, the real app on a loopback port beside the simulated WeChat
  (the same rig as ``siyu-bot demo``), for journeys. :func:`drain` moves a frozen clock through the
  outbox calls queued for later.

:func:`build` is the bare :class:`aiohttp.web.Application` for tests that serve it themselves (a second
"process" on the same database, the guarded listener, a child process). :func:`rows` and :func:`count`
read what either stored.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import SERVICES, build_app
from bot.clock import Clock, FrozenClock
from bot.config import Settings
from bot.db.models import OutboxCall, Receipt
from bot.dispatcher import Router
from bot.feature import Feature, routers_of
from bot.rig import Rig
from bot.services import Services
from handlers import features
from handlers.growth.simulated_corp import seed_corp

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
T = TypeVar("T")


def feature_routers() -> list[Router]:
    """Every feature's handlers in the order they run: to put a test's own router before or after them."""
    return routers_of(features())


def build(
    settings: Settings,
    clock: Clock | None = None,
    *,
    routers: Iterable[Router] | None = None,
    workers: bool = True,
    rng: random.Random | None = None,
) -> web.Application:
    """The app ``siyu-bot serve`` runs. ``routers`` replaces the features' handlers (``[]``: none); an app
    given routers runs no feature workers, periodic jobs or scheduled group posts (:func:`bot.app.build_app`).
    ``workers=False`` asks for that with the features' own handlers: the test runs the steps by hand."""
    return build_app(settings, features(), clock=clock, rng=rng, routers=_routers(routers, workers))


def _routers(routers: Iterable[Router] | None, workers: bool) -> Iterable[Router] | None:
    return feature_routers() if routers is None and not workers else routers


class RunningBot:
    """The app in-process behind the test client."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.services: Services = client.app[SERVICES]

    async def settle(self) -> None:
        """Wait until dispatched handlers have finished."""
        assert self.services.dispatcher is not None
        await self.services.dispatcher.drain(10)

    async def count(self, model: Any, *where: Any) -> int:
        return await count(self, model, *where)

    async def receipts(self) -> list[Receipt]:
        return await rows(self, Receipt)

    async def outbox(self) -> list[OutboxCall]:
        return await rows(self, OutboxCall)


async def start_bot(
    aiohttp_client: ClientFactory, settings: Settings, clock: Clock, routers: Iterable[Router] | None = None
) -> RunningBot:
    return RunningBot(await aiohttp_client(build(settings, clock, routers=routers)))


async def start_rig(
    settings: Settings,
    clock: Clock,
    *,
    rng: int | None = None,
    routers: Iterable[Router] | None = None,
    workers: bool = True,
    port: int = 0,
    extra: Iterable[Feature] = (),
) -> Rig:
    """The rig with every feature (and ``extra`` ones after them); ``rng`` seeds the app's random choices
    (A/B variants, staff rotation). ``routers`` and ``workers`` as in :func:`build`."""
    return await Rig.start(
        settings,
        clock,
        [*features(), *extra],
        rng=None if rng is None else random.Random(rng),
        routers=_routers(routers, workers),
        port=port,
        prepare=seed_corp,
    )


def free_port() -> int:
    """A loopback port nobody listens on now: for a rig whose ``public_base_url`` must name its port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HasServices(Protocol):
    @property
    def services(self) -> Services: ...


async def rows(app: HasServices, model: type[T], *where: Any) -> list[T]:
    """Rows of ``model`` matching ``where``, in insertion order (``id``, else ``created_at``) when it has one."""
    query = select(model).where(*where)
    for column in ("id", "created_at"):
        if hasattr(model, column):
            query = query.order_by(getattr(model, column))
            break
    assert app.services.sessions is not None
    async with app.services.sessions() as s:
        return list((await s.scalars(query)).all())


async def count(app: HasServices, model: Any, *where: Any) -> int:
    assert app.services.sessions is not None
    async with app.services.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def next_due(rig: Rig) -> datetime | None:
    """When the earliest pending outbox call becomes due (None: nothing pending)."""
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        due: datetime | None = await s.scalar(
            select(func.min(OutboxCall.next_attempt_at)).where(OutboxCall.state == "pending")
        )
    return due


async def drain(rig: Rig, clock: FrozenClock, *, horizon: timedelta = timedelta(seconds=10), rounds: int = 50) -> None:
    """``Rig.drain`` runs what is due *now*; calls queued for later (``not_before``: the 2-second group
    re-read, retry back-offs) need the clock moved. Drain now, then keep jumping the frozen clock to the
    next pending call due within ``horizon`` and draining, until nothing is due within it::

        await rig.sim.join_group(chat_id, [external_userid], join_state="group_fans")
        await drain(rig, clock)        # handlers → +2 s → groupchat/get → reconcile → mark_tag …
    """
    for _ in range(rounds):
        await rig.drain()
        due = await next_due(rig)
        if due is None or due > clock.now() + horizon:
            return
        if due > clock.now():
            clock.set(due)
    raise AssertionError(f"outbox still busy after {rounds} rounds")
