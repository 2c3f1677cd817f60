"""The staff-change rig: the app beside the simulator on a frozen clock, a corp seeded with members and
customers the bot imported (``siyu-bot import``), and the ``siyu-bot staff …`` commands run against it."""

from __future__ import annotations

import io
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bot.actions import run_action
from bot.clock import FrozenClock
from bot.context import Context
from bot.rig import Rig
from handlers.growth.importer import import_command
from handlers.staff import transfers
from handlers.staff.commands import Tools, run_with
from tests.support.apps import drain
from tests.support.settings import SHIPPED_CONTENT

MORNING = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
DAY = timedelta(hours=24)


def content_with_alerts(tmp: Path, toml: str) -> Path:
    """The shipped content with ``staff.toml`` replaced."""
    target = tmp / "content"
    shutil.copytree(SHIPPED_CONTENT, target)
    (target / "staff.toml").write_text(toml, encoding="utf-8")
    return target


async def staff_command(rig: Rig, clock: FrozenClock, fn: Callable[[Tools], Awaitable[int]]) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_with(rig.services.settings, out, clock, fn)
    return code, out.getvalue()


async def import_corp(rig: Rig, clock: FrozenClock) -> None:
    out = io.StringIO()
    assert await import_command(rig.services.settings, out, clock=clock) == 0, out.getvalue()


async def depart(rig: Rig, userid: str) -> None:
    """The simulator's control endpoint: ``userid`` leaves the corp."""
    url = f"{rig.state_base_url}/_sim/staff/{userid}/depart"
    async with aiohttp.ClientSession() as http, http.post(url) as response:
        assert response.status == 200, await response.text()


async def poll(rig: Rig, clock: FrozenClock) -> int:
    """One run of the transfer-result job, and everything it queued."""
    queued: int = await run_action(rig.services, transfers.poll_results)
    await drain(rig, clock)
    return queued


async def in_tx(rig: Rig, fn: Callable[[Context], Awaitable[object]]) -> object:
    return await run_action(rig.services, fn)
