"""``siyu-bot serve --rehearse``: a real serve process on the simulator's clock, on SQLite and PostgreSQL.

The simulator runs at 600× (``python -m bot.simulator --speed 600`` in-process here, so the test can seed it
and push callbacks); an existing group is imported; a follower arrives; then the simulated clock is moved
through a week the way an operator would (``siyu-bot sim advance`` to a little before each moment). The
drip's steps and the group posts are observed in the simulator's record at their simulated times. A
non-loopback platform URL is refused in one line.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings
from bot.sim_clock import ScaledClock, advance_command
from bot.simulator import CallbackPusher, SimAccounts, SimState, Simulator, mp_target, start_simulator, wecom_target
from bot.simulator.server import RunningSimulator
from handlers.growth.importer import import_command
from tests.support.apps import free_port
from tests.support.settings import (
    MP_AES,
    MP_APPID,
    MP_TOKEN,
    REPO_ROOT,
    SHIPPED_CONTENT,
    WECOM_AES,
    WECOM_CORP,
    WECOM_TOKEN,
    make_settings,
)

SPEED = 600.0  # ten simulated minutes a second
MONDAY_0850 = datetime(2026, 11, 23, 0, 50, tzinfo=UTC)  # 08:50 in Asia/Shanghai
LATE = timedelta(minutes=10)  # how late (simulated) a send may be observed: polls run every few sim-minutes


def config_text(db_url: str, port: int, api: str, oauth: str) -> str:
    return f"""
content_dir = "{SHIPPED_CONTENT}"
[server]
port = {port}
public_base_url = "http://127.0.0.1:{port}"
[database]
url = "{db_url}"
[wecom]
corp_id = "{WECOM_CORP}"
agent_id = 1000002
token = "{WECOM_TOKEN}"
encoding_aes_key = "{WECOM_AES}"
secret = "test-corp-secret-value"
api_base_url = "{api}/wecom"
[official_account]
app_id = "{MP_APPID}"
app_secret = "test-app-secret-value"
token = "{MP_TOKEN}"
encoding_aes_key = "{MP_AES}"
api_base_url = "{api}/mp"
oauth_base_url = "{oauth}"
[logging]
level = "WARNING"
format = "text"
"""


def siyu_bot(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "handlers", "-c", str(config), *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@dataclass
class Rehearsal:
    state: SimState
    sim: RunningSimulator
    customers: Simulator
    config: Path
    settings: Settings


@pytest.fixture
async def rehearsal(db_url: str, tmp_path: Path) -> AsyncIterator[Rehearsal]:
    base = make_settings(db_url)
    state = SimState(accounts=SimAccounts.from_settings(base), clock=ScaledClock(speed=SPEED, start=MONDAY_0850))
    state.add_group("lulu", "山野小食福利群1", chat_id="wrOLD1")  # it existed before siyu-bot
    sim = await start_simulator(state)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(config_text(db_url, port, sim.base_url, sim.oauth_base), encoding="utf-8")
    settings = make_settings(
        db_url, wecom={"api_base_url": sim.wecom_api_base}, official_account={"api_base_url": sim.mp_api_base}
    )
    assert await import_command(settings, io.StringIO(), clock=state.clock) == 0
    log_path = tmp_path / "serve.log"
    process = await asyncio.to_thread(start_serve, config, log_path)
    try:
        async with aiohttp.ClientSession() as http:
            await _healthy(http, f"http://127.0.0.1:{port}/healthz", process, log_path)
            base_url = f"http://127.0.0.1:{port}"
            pushers = (
                CallbackPusher(http, wecom_target(state.accounts, base_url + "/callback/wecom"), clock=state.clock),
                CallbackPusher(http, mp_target(state.accounts, base_url + "/callback/mp"), clock=state.clock),
            )
            yield Rehearsal(state, sim, Simulator(state, wecom=pushers[0], mp=pushers[1]), config, settings)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 20)
        await sim.close()


def start_serve(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log:
        return subprocess.Popen(siyu_bot(config, "serve", "--rehearse"), env=environment(), stdout=log, stderr=log)


async def _healthy(http: aiohttp.ClientSession, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise AssertionError("serve --rehearse exited: " + await asyncio.to_thread(log.read_text))
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("serve --rehearse did not become healthy: " + await asyncio.to_thread(log.read_text))


async def advance_to(r: Rehearsal, before: datetime) -> None:
    """``siyu-bot sim advance`` on the simulator (as an operator would), to ``before``."""
    seconds = (before - r.state.now()).total_seconds()
    if seconds > 0:
        out = io.StringIO()
        assert await asyncio.to_thread(advance_command, r.sim.base_url, seconds, out) == 0, out.getvalue()


async def seen(found: Callable[[], datetime | None], what: str, seconds: float = 30.0) -> datetime:
    for _ in range(int(seconds / 0.05)):
        at = found()
        if at is not None:
            return at
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} never reached the simulator")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """Local time (Asia/Shanghai) in the rehearsed week (day 0 = Monday 2026-11-23) as UTC."""
    return datetime(2026, 11, 23, hour, minute, tzinfo=UTC) + timedelta(days=day, hours=-8)


async def test_a_week_is_rehearsed_at_its_simulated_times(rehearsal: Rehearsal) -> None:
    r = rehearsal
    await advance_to(r, local(0, 9, 0))
    follower = await r.customers.follow(scene="poster_618")
    followed_at = r.state.now()
    await r.customers.send_text(follower.openid, "在吗")  # opens the 48-hour customer-service window

    def drip(n: int) -> Callable[[], datetime | None]:
        def found() -> datetime | None:
            mine = [d.at for d in r.state.delivered if d.to == follower.openid]
            return mine[n] if len(mine) > n else None

        return found

    def group_post(after: datetime) -> Callable[[], datetime | None]:
        def found() -> datetime | None:
            calls = [c for c in r.state.calls_to("externalcontact/add_msg_template") if c.at >= after]
            chats = [c for c in calls if "wrOLD1" in (c.body or {}).get("chat_id_list", [])]
            return chats[0].at if chats else None

        return found

    first = await seen(drip(0), "the drip's first step")
    assert followed_at <= first <= followed_at + LATE
    await advance_to(r, local(0, 9, 55))
    monday = await seen(group_post(local(0, 9, 55)), "Monday's group post")
    assert local(0, 10) <= monday <= local(0, 10) + LATE
    await advance_to(r, followed_at + timedelta(hours=3) - timedelta(minutes=5))
    second = await seen(drip(1), "the drip's +3 h step")
    assert followed_at + timedelta(hours=3) <= second <= followed_at + timedelta(hours=3) + LATE
    await advance_to(r, local(4, 19, 55))  # Friday evening: 周五周末囤货 targets 山野小食福利群*
    friday = await seen(group_post(local(4, 19, 55)), "Friday's group post")
    assert local(4, 20) <= friday <= local(4, 20) + LATE
    await advance_to(r, local(7, 9, 55))  # a week later: Monday's post again
    again = await seen(group_post(local(7, 9, 55)), "next Monday's group post")
    assert local(7, 10) <= again <= local(7, 10) + LATE


def test_a_non_loopback_platform_url_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        config_text(sqlite_url, free_port(), "http://127.0.0.1:9", "https://open.weixin.qq.com"), encoding="utf-8"
    )
    done = subprocess.run(
        siyu_bot(config, "serve", "--rehearse"), env=environment(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: config: official_account.oauth_base_url: is https://open.weixin.qq.com: "
        "--rehearse runs only against a local simulator (loopback URLs)"
    ]
