"""``siyu-bot serve --rehearse``: a real serve process on the simulator's clock, on SQLite and PostgreSQL.

The simulator runs at 150× (``python -m bot.simulator --speed 150`` in-process here, so the test can seed it
and push callbacks); an existing group is imported; a customer adds staff through the package card (its
drip: next day 10:00, day 3 20:00, group-send tasks); then the simulated clock is moved through a week
the way an operator would (``siyu-bot sim advance`` to a little before each moment). The drip's steps and
the group posts are observed in the simulator's record at their simulated times. A non-loopback platform
URL is refused in one line.
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
from handlers.content import load_runtime_content
from handlers.growth.importer import import_command
from handlers.sop.content import sop_of
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

SPEED = 150.0  # 2.5 simulated minutes a second: LATE is 4 s of real time, room for a loaded CI machine
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


def task_for(r: Rehearsal, chat_type: str, who: str, after: datetime) -> Callable[[], datetime | None]:
    """When the simulator recorded a group-send task (``add_msg_template``) for ``who`` after ``after``."""

    def found() -> datetime | None:
        for call in r.state.calls_to("externalcontact/add_msg_template"):
            body = call.body if isinstance(call.body, dict) else {}
            listed = body.get("chat_id_list" if chat_type == "group" else "external_userid") or []
            if call.at >= after and body.get("chat_type") == chat_type and who in listed:
                return call.at
        return None

    return found


async def test_a_week_is_rehearsed_at_its_simulated_times(rehearsal: Rehearsal) -> None:
    r = rehearsal
    tz = r.settings.tz
    await advance_to(r, local(0, 9, 0))
    await r.customers.add_friend("lulu", "wmREH", state="pkgcard")  # starts pkgcard_followup (2 steps)
    drip = sop_of(load_runtime_content(r.settings.content_dir)).drip("pkgcard_followup")
    assert drip is not None
    gift, hero = (step.delay.due_after(r.state.now(), tz) for step in drip.steps)
    moments = sorted([
        (local(0, 10), "group", "wrOLD1"),  # 周一上新 targets 群类型/福利群 = 山野小食福利群*
        (gift, "single", "wmREH"),  # next_day 10:00
        (hero, "single", "wmREH"),  # day 3 20:00
        (local(4, 20), "group", "wrOLD1"),  # 周五周末囤货
        (local(7, 10), "group", "wrOLD1"),  # a week later: Monday's post again
    ])  # fmt: skip
    for due, chat_type, who in moments:
        await advance_to(r, due - timedelta(minutes=5))  # as an operator would: a little before
        at = await seen(task_for(r, chat_type, who, due - timedelta(minutes=5)), f"the {chat_type} task due {due}")
        assert due <= at <= due + LATE, (due, at)


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
