"""Injected time: handlers and workers ask ``ctx.clock``, never ``datetime.now()``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FrozenClock:
    """A clock that moves only when told (tests). ``sleep`` advances it and yields once."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> None:
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


class ScaledClock:
    """Simulated time running ``speed`` times faster than the wall clock (``siyu-bot demo --speed``).

    Only ever used with the simulator: the demo builds it; nothing in ``serve`` can.
    """

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        import time

        self._speed = speed
        self._start = (start or datetime.now(UTC)).astimezone(UTC)
        self._t0 = time.monotonic()
        self._offset = timedelta(0)

    def now(self) -> datetime:
        import time

        return self._start + self._offset + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)

    def advance(self, delta: timedelta) -> None:
        """Jump ahead (the demo skips quiet stretches of a journey)."""
        self._offset += delta

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self._speed)
