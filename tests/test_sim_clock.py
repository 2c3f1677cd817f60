"""Simulated time: the simulation-only clock endpoint, the drip poll on a sped-up clock, and the guard
that keeps simulated time away from the real platform (SQLite and PostgreSQL where a database is used)."""

from __future__ import annotations

import asyncio
import io
import random
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot import cli, serving
from bot.app import build_app
from bot.clock import FrozenClock, SystemClock
from bot.config import Settings
from bot.rig import Rig
from bot.sim_clock import (
    SIM_PREFIX,
    SimClock,
    SimulationRefused,
    advance_command,
    install_sim_routes,
    is_loopback_url,
    real_seconds,
)
from handlers import features
from handlers.sop.drip_worker import DRIP_WORKER
from tests.conftest import make_settings
from tests.drip_helpers import (
    MORNING,
    drip_rig,  # noqa: F401  (the fixture "rig")
    hours,
    steps_of,
    tick,
    worker_for,
)

REAL_WECOM = {"api_base_url": "https://qyapi.weixin.qq.com"}
REAL_MP = {"api_base_url": "https://api.weixin.qq.com"}


def sim_paths(app: web.Application) -> list[str]:
    return [r.canonical for r in app.router.resources() if r.canonical.startswith(SIM_PREFIX.rstrip("/"))]


async def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        return response.status, await response.json()


async def wait_for_state(rig: Rig, step_id: str, state: str, seconds: float = 10.0) -> None:
    """Let the app's own drip worker (not the test) get there; the outbox is drained meanwhile."""
    for _ in range(int(seconds / 0.05)):
        await rig.drain()
        if any(s.step_id == step_id and s.state == state for s in await steps_of(rig, "mp_48h")):
            return
        await asyncio.sleep(0.05)
    states = [(s.step_id, s.state, s.reason) for s in await steps_of(rig, "mp_48h")]
    raise AssertionError(f"step {step_id} never became {state}: {states}")


async def test_advance_endpoint_moves_the_clock_and_due_steps_then_run(rig: Rig, clock: FrozenClock) -> None:
    worker = worker_for(rig)
    openid = (await rig.sim.follow(scene="poster_618")).openid
    await tick(rig, worker)  # step 1 ("0m")
    await rig.sim.send_text(openid, "优惠券怎么用？")  # the 48-hour window for step 2
    await rig.drain()
    assert [s.state for s in await steps_of(rig, "mp_48h")] == ["sent", "pending", "pending"]
    rig.services.parts[DRIP_WORKER].start()  # the fixture stopped the app's worker; from here on it runs the steps

    out = io.StringIO()  # the CLI, as an operator runs it against a demo server (urllib: off the event loop)
    assert await asyncio.to_thread(advance_command, rig.base_url, 3 * 3600, out) == 0
    assert "now 2026-11-23 12:00:00" in out.getvalue()
    assert clock.now() == MORNING + hours(3)
    await wait_for_state(rig, "2", "sent")  # woken by the endpoint: the app's worker ran the due step
    await rig.drain()  # the step's outbox call is poked after its commit: let it reach the platform
    sends = [d for d in rig.state.delivered if d.to == openid and d.api == "message/custom/send"]
    assert [d.at for d in sends][-1] == MORNING + hours(3)

    async with aiohttp.ClientSession() as http, http.get(rig.base_url + "/_sim/clock") as response:
        assert (await response.json())["local"] == "2026-11-23 12:00:00"
    for bad in ({"seconds": -5}, {"seconds": "3600"}, {"seconds": True}, {"minutes": 1}, [1]):
        status, answer = await post(rig.base_url + "/_sim/clock/advance", bad)
        assert status == 400 and "seconds" in answer["error"]
    assert clock.now() == MORNING + hours(3)


async def test_the_drip_poll_follows_a_sped_up_clock(settings: Settings) -> None:
    """At 3600× a 5 s poll on the wall clock would look every 5 simulated hours and miss the +3 h step."""
    clock = SimClock(settings, speed=3600, start=MORNING)
    assert real_seconds(clock, 5.0) == 0.05 and real_seconds(SystemClock(), 5.0) == 5.0
    rig = await Rig.start(settings, clock, features(), rng=random.Random(7))
    try:
        openid = (await rig.sim.follow(scene="poster_618")).openid
        await rig.sim.send_text(openid, "优惠券怎么用？")
        await rig.drain()
        await wait_for_state(rig, "2", "sent", seconds=15.0)  # no tick, no wake: the app's poll alone
        [_, second, _] = await steps_of(rig, "mp_48h")
        assert second.finished_at is not None and second.finished_at - second.due_at < timedelta(minutes=30)
    finally:
        await rig.close()


def test_simulated_time_is_refused_with_a_real_platform_url(sqlite_url: str) -> None:
    for overrides in ({"wecom": REAL_WECOM}, {"official_account": REAL_MP}):
        real = make_settings(sqlite_url, **overrides)
        with pytest.raises(SimulationRefused, match="api_base_url") as refused:
            SimClock(real, speed=3600)
        assert refused.value.key in ("wecom.api_base_url", "official_account.api_base_url")
        with pytest.raises(SimulationRefused):  # nor can the endpoint be put on an app that talks to it
            install_sim_routes(build_app(real, features()), real, FrozenClock(MORNING))
    local = make_settings(sqlite_url)
    with pytest.raises(SimulationRefused, match="simulated clock"):
        install_sim_routes(build_app(local, features()), local, SystemClock())
    assert SimClock(local, speed=3600).speed == 3600


def test_loopback_urls() -> None:
    yes = ["http://127.0.0.1:9/wecom", "http://127.8.9.10", "http://[::1]:8080/x", "http://localhost:1/mp"]
    no = ["https://qyapi.weixin.qq.com", "http://10.0.0.1", "http://127.0.0.1.nip.io", "http://[::2]", "not a url"]
    assert all(is_loopback_url(u) for u in yes) and not any(is_loopback_url(u) for u in no)
    out = io.StringIO()
    assert advance_command("https://siyu.example.com", 60, out) == 2 and "not a loopback URL" in out.getvalue()


async def test_serve_never_registers_the_simulation_endpoint(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[web.Application] = []
    monkeypatch.setattr(cli, "settings_of", lambda _args: settings)  # loopback URLs: still no endpoint
    monkeypatch.setattr(serving, "run", lambda app, *_a, **_kw: served.append(app))
    assert await asyncio.to_thread(cli.main, ["serve"], features()) == 0
    [app] = served
    paths = [r.canonical for r in app.router.resources()]
    assert "/healthz" in paths and sim_paths(app) == []
    rig = await Rig.start(settings, FrozenClock(MORNING), features())  # the demo/test rig does serve it
    try:
        async with aiohttp.ClientSession() as http, http.get(rig.base_url + "/_sim/clock") as response:
            assert response.status == 200
    finally:
        await rig.close()
