"""``POST/GET /api/v1/import``: the importer run by the serving bot against the simulator, one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer, OutboxCall
from bot.simulator import SimAccounts, SimState, start_simulator
from handlers.api.imports import IMPORTS
from handlers.growth import importer
from handlers.growth.tables import ImportCheckpoint, Touch
from tests.api.support import Api, make_keys
from tests.growth.test_import import seed
from tests.support.apps import ClientFactory, rows, start_bot
from tests.support.settings import make_settings


@dataclass
class World:
    settings: Settings
    state: SimState


@pytest.fixture
async def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setattr(importer, "CUSTOMERS_PER_PAGE", 2)  # several pages
    state = SimState(accounts=SimAccounts.from_settings(make_settings(db_url)), seed=3)
    seed(state)
    sim = await start_simulator(state, "127.0.0.1", 0)
    settings = make_settings(
        db_url,
        wecom={"api_base_url": sim.wecom_api_base},
        official_account={"api_base_url": sim.mp_api_base},
        api={"burst": 10_000},
    )
    try:
        yield World(settings, state)
    finally:
        await sim.close()


@pytest.fixture
async def sim_api(world: World, aiohttp_client: ClientFactory, clock: FrozenClock) -> tuple[Api, SimState]:
    bot = await start_bot(aiohttp_client, world.settings, clock)
    return Api(bot, await make_keys(bot)), world.state


async def finished(api: Api) -> dict[str, Any]:
    for _ in range(400):
        answer = await api.get("/import", key="read")
        if answer.body["state"] != "running":
            return dict(answer.body)
        await asyncio.sleep(0.025)
    raise AssertionError("the import did not finish")


async def test_an_import_started_through_the_api(sim_api: tuple[Api, SimState]) -> None:
    api, _ = sim_api
    assert (await api.get("/import", key="read")).status == 404
    assert (await api.post("/import", key="write")).status == 403
    first, second = await asyncio.gather(api.post("/import"), api.post("/import"))
    assert sorted((first.status, second.status)) == [202, 409]
    started = first if first.status == 202 else second
    assert started.body["state"] == "running" and started.body["resumable"] == []

    done = await finished(api)
    assert done["state"] == "done" and done["error"] is None and done["resumable"] == []
    assert done["summary"]["customers_new"] == 7 and done["summary"]["linked"] == 2
    assert any("ETA" in line for line in done["progress"])
    assert await api.bot.count(Customer) == 7
    assert {t.action for t in await rows(api.bot, Touch)} == {"imported"}
    assert await api.bot.count(OutboxCall) == 0  # nothing announced: no welcome, no tag call
    assert [a["resource"] for a in (await api.get("/audit")).body["items"]] == [f"import:{started.body['id']}"]

    again = await api.post("/import")
    assert again.status == 202
    repeat = await finished(api)
    assert repeat["id"] == started.body["id"] + 1 and repeat["summary"]["changed"] == 0


async def test_a_failed_import_says_why_and_resumes(sim_api: tuple[Api, SimState]) -> None:
    api, state = sim_api
    state.faults.fail_before("externalcontact/groupchat/list", errcode=60011, errmsg="no privilege")
    await api.post("/import")
    failed = await finished(api)
    assert failed["state"] == "failed" and "60011" in failed["error"] and "resume" in failed["error"]
    assert failed["resumable"] == ["wecom_customers"] and failed["summary"]["customers_new"] == 5
    await api.post("/import")
    done = await finished(api)
    assert done["state"] == "done" and done["summary"]["customers_new"] == 2  # wm9 (a group member), o2
    assert await api.bot.count(ImportCheckpoint) == 0


async def test_a_server_stopped_mid_import_resumes_on_the_next_post(
    world: World, aiohttp_client: ClientFactory, clock: FrozenClock
) -> None:
    """The server stops while the import waits on the platform (the customers read, the groups not): the
    run is cancelled and says so; the next server's POST resumes from the checkpoints."""
    world.state.faults.lose_answer("externalcontact/groupchat/list", mode="timeout", delay=2.0)
    first = await start_bot(aiohttp_client, world.settings, clock)
    api = Api(first, await make_keys(first))
    assert (await api.post("/import")).status == 202
    for _ in range(400):
        if world.state.calls_to("externalcontact/groupchat/list"):
            break
        await asyncio.sleep(0.025)
    runs = first.services.parts[IMPORTS]
    await first.client.close()  # the server stops: its import is cancelled
    assert runs.latest is not None and runs.latest.state == "failed"
    assert "server stopped" in (runs.latest.error or "")

    second = await start_bot(aiohttp_client, world.settings, clock)
    assert await second.count(Customer) == 5  # wm0-wm4: the customers' pages were stored before the stop
    again = Api(second, {"admin": api.keys["admin"], "read": api.keys["read"]})
    resumed = await again.post("/import")
    assert resumed.status == 202 and resumed.body["resumable"] == ["wecom_customers"]
    done = await finished(again)
    assert done["state"] == "done" and await second.count(Customer) == 7
    assert await second.count(ImportCheckpoint) == 0
