from __future__ import annotations

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from tests.api.support import Api, make_keys
from tests.support.apps import ClientFactory, start_bot
from tests.support.settings import make_settings


@pytest.fixture
def api_settings(db_url: str) -> Settings:
    # The frozen clock never refills a token bucket: a burst no test reaches (the rate test sets its own).
    return make_settings(db_url, api={"burst": 10_000})


@pytest.fixture
async def api(aiohttp_client: ClientFactory, api_settings: Settings, clock: FrozenClock) -> Api:
    bot = await start_bot(aiohttp_client, api_settings, clock)
    return Api(bot, await make_keys(bot))
