"""``siyu-bot serve --rehearse``: the real server on the simulator's clock, to rehearse a week at N× speed.

Allowed when — and only when — every platform URL of the config is loopback (127.0.0.0/8, ::1,
localhost): ``wecom.api_base_url``, ``official_account.api_base_url`` and
``official_account.oauth_base_url``. Anything else is refused in one line before anything starts.

The simulator owns simulated time (``python -m bot.simulator --speed N``; ``GET /_sim/clock`` on its port,
``siyu-bot sim advance --url <simulator>`` moves it). The bot's :class:`FollowedClock` reads it at start-up
and then every :data:`FOLLOW_SECONDS`: between reads it runs at the simulator's speed, and when the
simulator jumps ahead the bot's workers are woken (``Services.wake``), so drips and group posts are sent at
their simulated times, and the simulator's record shows them at those times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from urllib.error import URLError
from urllib.parse import urlsplit

import aiohttp

from bot.config import ConfigError, Settings
from bot.sim_clock import SIM_PREFIX, SimulationRefused, is_loopback_url

log = logging.getLogger(__name__)

FOLLOW_SECONDS = 0.2  # real seconds between two reads of the simulator's clock


def platform_urls(settings: Settings) -> list[tuple[str, str]]:
    oa = settings.official_account
    return [
        ("wecom.api_base_url", settings.wecom.api_base_url),
        ("official_account.api_base_url", oa.api_base_url),
        ("official_account.oauth_base_url", oa.oauth_base_url),
    ]


def require_rehearsal_platform(settings: Settings) -> None:
    for key, url in platform_urls(settings):
        if not is_loopback_url(url):
            raise SimulationRefused(key, f"is {url}: --rehearse runs only against a local simulator (loopback URLs)")


def simulator_clock_url(settings: Settings) -> str:
    """The simulator's clock endpoint, on the host and port of ``wecom.api_base_url``."""
    parts = urlsplit(settings.wecom.api_base_url)
    return f"{parts.scheme}://{parts.netloc}{SIM_PREFIX}clock"


class FollowedClock:
    """The simulator's clock as last read, running on at its speed until the next read."""

    def __init__(self, settings: Settings, url: str, view: dict[str, object]) -> None:
        require_rehearsal_platform(settings)
        self.url = url
        self._remote, self._speed, self._t0 = _parse(view), _speed_of(view), time.monotonic()

    @classmethod
    def connect(cls, settings: Settings, url: str | None = None) -> FollowedClock:
        """Read the simulator's clock once (before the server starts); ConfigError when it is not there."""
        require_rehearsal_platform(settings)
        url = url or simulator_clock_url(settings)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                view = json.loads(response.read())
        except (URLError, OSError, ValueError) as exc:
            raise ConfigError(
                "wecom.api_base_url", f"no simulator clock at {url} ({exc}); start the simulator first"
            ) from None
        return cls(settings, url, view)

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        return self._remote + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self._speed)

    def update(self, view: dict[str, object]) -> bool:
        """Take a new reading; True when the simulator jumped ahead of where this clock thought it was.
        Never goes back: a reading behind the estimate (a slow answer) waits for the simulator to catch up."""
        estimate, remote = self.now(), _parse(view)
        self._speed = _speed_of(view)
        self._remote, self._t0 = max(remote, estimate), time.monotonic()
        return remote - estimate > timedelta(seconds=1 + self._speed * FOLLOW_SECONDS)

    async def follow(self, on_jump: Callable[[], None]) -> AsyncIterator[None]:
        """Keep reading the simulator's clock while the app runs (an ``app.cleanup_ctx`` entry)."""

        async def loop() -> None:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                while True:
                    await asyncio.sleep(FOLLOW_SECONDS)
                    try:
                        async with http.get(self.url) as response:
                            view = await response.json()
                    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                        log.warning("simulator clock unreachable at %s: %s", self.url, exc)
                        continue
                    if self.update(view):
                        on_jump()

        task = asyncio.get_running_loop().create_task(loop(), name="rehearsal:follow-clock")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _parse(view: dict[str, object]) -> datetime:
    now = datetime.fromisoformat(str(view["now"]))
    if now.tzinfo is None:
        raise ValueError("the simulator's clock must be timezone-aware")
    return now


def _speed_of(view: dict[str, object]) -> float:
    speed = view.get("speed")
    return float(speed) if isinstance(speed, int | float) and speed > 0 else 1.0
