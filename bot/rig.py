"""The bot and a simulated WeChat in one process, wired together over loopback HTTP.

Used by ``siyu-bot demo`` and by the journey tests: the simulator serves the platform API the bot calls
(its base URLs replace the real ones, so this can never talk to the real platform) and pushes signed,
encrypted callbacks to the bot's real callback endpoints. On a controllable clock (``SimClock``, the
tests' ``FrozenClock``) the bot also serves the simulation-only ``/_sim/clock`` endpoint
(:mod:`bot.sim_clock`); ``serve`` never does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence

import aiohttp
from aiohttp import web

from bot.app import SERVICES, build_app
from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.dispatcher import Router
from bot.feature import Feature
from bot.services import Services
from bot.sim_clock import Advanceable, install_sim_routes
from bot.simulator import (
    CallbackPusher,
    RunningSimulator,
    SimAccounts,
    SimState,
    Simulator,
    mp_target,
    start_simulator,
    wecom_target,
)


def point_at_simulator(settings: Settings, sim: RunningSimulator) -> Settings:
    """The same settings with both API base URLs on the simulator."""
    wecom = settings.wecom.model_copy(update={"api_base_url": sim.wecom_api_base})
    oa = settings.official_account.model_copy(
        update={"api_base_url": sim.mp_api_base, "oauth_base_url": sim.oauth_base}
    )
    return settings.model_copy(update={"wecom": wecom, "official_account": oa})


class Rig:
    """A running bot (real app, real database) plus the simulator and a scripted customer side."""

    def __init__(self, state: SimState, sim_server: RunningSimulator, runner: web.AppRunner, port: int) -> None:
        self.state = state
        self._sim_server = sim_server
        self._runner = runner
        self.port = port
        self._session = aiohttp.ClientSession()
        settings = self.services.settings
        base = f"http://127.0.0.1:{port}"
        wecom = CallbackPusher(
            self._session, wecom_target(state.accounts, base + settings.server.wecom_path), clock=state.clock
        )
        mp = CallbackPusher(self._session, mp_target(state.accounts, base + settings.server.mp_path), clock=state.clock)
        self.sim = Simulator(state, wecom=wecom, mp=mp)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        clock: Clock,
        features: Sequence[Feature],
        *,
        rng: random.Random | None = None,
        routers: Iterable[Router] | None = None,
        seed: int = 20240601,
        port: int = 0,
        prepare: Callable[[SimState, Content], None] | None = None,
    ) -> Rig:
        """``prepare`` gives the simulated corp what the content refers to (growth's ``seed_corp``: the
        staff and groups of the channel codes), as a real corp has them before codes are created."""
        state = SimState(clock=clock, seed=seed, accounts=SimAccounts.from_settings(settings))
        sim_server = await start_simulator(state, "127.0.0.1", 0)
        app = build_app(point_at_simulator(settings, sim_server), features, clock=clock, rng=rng, routers=routers)
        services = app[SERVICES]
        if prepare is not None:
            prepare(state, services.content)
        if isinstance(clock, Advanceable):
            install_sim_routes(app, services.settings, clock, on_advance=services.wake)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)  # a fixed port when public_base_url must match (H5)
        await site.start()
        port = runner.addresses[0][1]
        return cls(state, sim_server, runner, port)

    @property
    def services(self) -> Services:
        return self._runner.app[SERVICES]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_base_url(self) -> str:
        """Where the simulated platform listens."""
        return self._sim_server.base_url

    async def drain(self, rounds: int = 50) -> None:
        """Run handlers and due outbox calls until nothing is left to do at the current (frozen) time."""
        s = self.services
        for _ in range(rounds):
            await s.dispatcher.drain(30)
            await s.outbox.settle()
            ran = await s.outbox.run_due()
            await asyncio.sleep(0)
            if ran == 0 and s.dispatcher.in_flight == 0 and s.outbox.busy == 0:
                return
        raise RuntimeError("the rig did not settle")

    async def close(self) -> None:
        await self._session.close()
        await self._runner.cleanup()
        await self._sim_server.close()
