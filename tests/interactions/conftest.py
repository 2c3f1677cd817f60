"""Fixtures of the interaction tests: the rig with the H5 pages on (``h5_rig``), for the HTTP and the browser tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.clock import FrozenClock
from bot.rig import Rig
from tests.interactions.helpers import H5_SECRET
from tests.support.apps import free_port, start_rig
from tests.support.settings import make_settings


@pytest.fixture
async def h5_rig(db_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    """The bot with the H5 pages on, on a fixed loopback port (``public_base_url`` must name it)."""
    port = free_port()
    server = {"session_secret": H5_SECRET, "public_base_url": f"http://127.0.0.1:{port}"}
    rig = await start_rig(make_settings(db_url, server=server), clock, rng=9, port=port)
    rig.state.web_user = (await rig.sim.follow()).openid  # the WeChat user holding the phone
    await rig.drain()
    yield rig
    await rig.close()
