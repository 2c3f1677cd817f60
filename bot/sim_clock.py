"""Simulated time for the demo and the rig — and the guard that keeps it away from the real platform.

:class:`SimClock` runs ``speed`` times faster than the wall clock, can change speed and jump ahead.
The demo runs the growth loop at 1× (a ``welcome_code`` lives 20 s: at 3600× that is 6 ms) and a
48-hour drip at ``--speed`` between the moments that matter. Workers that poll (``DripWorker``) ask
:func:`real_seconds` how long their interval is in wall-clock time, so a step due at +3 h is claimed
within minutes of simulated time, not hours.

**Never against the real platform.** A ``SimClock`` cannot be built, and the simulation endpoint
cannot be registered, unless both ``wecom.api_base_url`` and ``official_account.api_base_url`` are
loopback URLs (127.0.0.0/8, ::1, localhost) — the simulator's. ``serve`` builds its app with the
system clock and never calls :func:`install_sim_routes`; only :class:`bot.rig.Rig` (demo, tests) does.

Simulation-only HTTP endpoint (on the bot's own port, demo and rig only)::

    GET  /_sim/clock                      → {"now": ISO-8601 UTC, "local": "YYYY-MM-DD HH:MM:SS", …}
    POST /_sim/clock/advance {"seconds": N} → the same, after jumping N seconds ahead (0 < N ≤ 400 days)

``siyu-bot sim advance --seconds N --url http://127.0.0.1:PORT`` calls it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol, TextIO, runtime_checkable
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from aiohttp import web

from bot.clock import Clock
from bot.config import ConfigError, Settings

SIM_PREFIX = "/_sim/"
MAX_ADVANCE = timedelta(days=400)
MIN_POLL_SECONDS = 0.05  # a sped-up poll never spins faster than this (real time)


class SimulationRefused(ConfigError):
    """Simulated time was asked for where the platform is not the local simulator."""


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_simulated_platform(settings: Settings) -> None:
    """Raise :class:`SimulationRefused` unless both platform API base URLs are loopback (the simulator)."""
    for key, url in (
        ("wecom.api_base_url", settings.wecom.api_base_url),
        ("official_account.api_base_url", settings.official_account.api_base_url),
    ):
        if not is_loopback_url(url):
            raise SimulationRefused(key, f"simulated time runs only against the local simulator, not {url}")


@runtime_checkable
class Scaled(Protocol):
    """A clock whose time runs faster than the wall clock."""

    @property
    def speed(self) -> float: ...


@runtime_checkable
class Advanceable(Protocol):
    """A clock that can be moved ahead on request (``SimClock`` and the tests' ``FrozenClock``)."""

    def now(self) -> datetime: ...

    def advance(self, delta: timedelta) -> None: ...


def real_seconds(clock: Clock, simulated: float, floor: float = MIN_POLL_SECONDS) -> float:
    """Wall-clock seconds for ``simulated`` seconds of ``clock`` (a poll interval): the same on a normal
    clock, ``simulated / speed`` on a sped-up one — but at least ``floor`` and at most ``simulated``."""
    if not isinstance(clock, Scaled) or clock.speed <= 1.0:
        return simulated
    return min(simulated, max(floor, simulated / clock.speed))


def _checked_speed(speed: float) -> float:
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError("speed must be a positive number")
    return speed


class ScaledClock:
    """Simulated time: ``speed``× the wall clock from ``start``; ``advance`` jumps, ``set_speed`` changes pace.

    The simulator's own clock (``python -m bot.simulator --speed N``); the bot's is :class:`SimClock`."""

    def __init__(self, *, speed: float = 1.0, start: datetime | None = None) -> None:
        self._speed = _checked_speed(speed)
        self._base = (start or datetime.now(UTC)).astimezone(UTC)
        self._t0 = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        return self._base + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)

    def set_speed(self, speed: float) -> None:
        mono = time.monotonic()
        self._base += timedelta(seconds=(mono - self._t0) * self._speed)
        self._t0, self._speed = mono, _checked_speed(speed)

    def advance(self, delta: timedelta | float) -> None:
        """Jump ahead; simulated time never goes back (rows already written would be in the future)."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("simulated time only moves forward")
        self._base += step

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self._speed)


class SimClock(ScaledClock):
    """The bot's simulated time (demo, rig).

    Built only for settings whose platform is the local simulator (:func:`require_simulated_platform`).
    """

    def __init__(self, settings: Settings, *, speed: float = 1.0, start: datetime | None = None) -> None:
        require_simulated_platform(settings)
        super().__init__(speed=speed, start=start)


def clock_view(clock: Advanceable | Clock, tz: tzinfo) -> dict[str, object]:
    now = clock.now()
    speed = clock.speed if isinstance(clock, Scaled) else None
    return {"now": now.isoformat(), "local": now.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), "speed": speed}


def install_sim_routes(
    app: web.Application, settings: Settings, clock: Clock, on_advance: Callable[[], None] = lambda: None
) -> None:
    """Register ``/_sim/clock`` (GET) and ``/_sim/clock/advance`` (POST) — demo and rig only.

    ``settings`` are the ones the app runs with; ``on_advance`` wakes the workers that wait on time."""
    require_simulated_platform(settings)
    if not isinstance(clock, Advanceable):
        raise SimulationRefused("clock", "the simulation endpoint needs a simulated clock")
    add_clock_routes(app, clock, settings.tz, on_advance)


def add_clock_routes(
    app: web.Application, clock: Advanceable, tz: tzinfo, on_advance: Callable[[], None] = lambda: None
) -> None:
    """The clock endpoints themselves (the bot's in the demo and rig; the simulator's own)."""
    controllable = clock

    async def show(_request: web.Request) -> web.Response:
        return web.json_response(clock_view(controllable, tz))

    async def advance(request: web.Request) -> web.Response:
        try:
            seconds = (await request.json())["seconds"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"seconds": N}'}, status=400)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            return web.json_response({"error": "seconds must be a number"}, status=400)
        if not 0 < seconds <= MAX_ADVANCE.total_seconds():
            return web.json_response({"error": f"seconds must be in (0, {MAX_ADVANCE.total_seconds():g}]"}, status=400)
        controllable.advance(timedelta(seconds=seconds))
        on_advance()
        return web.json_response({"advanced_seconds": seconds, **clock_view(controllable, tz)})

    app.router.add_get(SIM_PREFIX + "clock", show)
    app.router.add_post(SIM_PREFIX + "clock/advance", advance)


def advance_command(url: str, seconds: float, out: TextIO) -> int:
    """``siyu-bot sim advance``: ask a demo/rig server (loopback only) to move its clock ahead."""
    if not is_loopback_url(url):
        print(f"error: {url} is not a loopback URL; the simulation endpoint only exists on local demo servers",
              file=out)  # fmt: skip
        return 2
    body = json.dumps({"seconds": seconds}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + SIM_PREFIX + "clock/advance", data=body, method="POST",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    except HTTPError as exc:
        print(f"error: {exc.code} {exc.read().decode(errors='replace')}", file=out)
        return 1
    except (URLError, OSError) as exc:
        print(f"error: cannot reach {url}: {exc}", file=out)
        return 1
    print(f"simulated clock advanced {seconds:g} s: now {answer['local']} ({answer['now']})", file=out)
    return 0
