"""A per-key token bucket in memory — per replica: N replicas allow N times the rate.

Enough to blunt a tap storm or a script against one customer's session; the business limits (one
check-in a day, draws per day) are enforced by the database, not here. Move it to Redis when the rate
must be global.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        capacity: float = 10.0,
        per_second: float = 1.0,
        *,
        max_keys: int = 50_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._rate = per_second
        self._max_keys = max_keys
        self._now = monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0.0 if a request may go ahead now, else the seconds until one may."""
        now = self._now()
        tokens, at = self._buckets.pop(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:  # forget the least recently seen
            self._buckets.popitem(last=False)
        return wait
