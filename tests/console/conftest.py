from __future__ import annotations

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from tests.support.apps import ClientFactory, RunningBot, start_bot


@pytest.fixture
async def bot(aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock) -> RunningBot:
    return await start_bot(aiohttp_client, settings, clock)
