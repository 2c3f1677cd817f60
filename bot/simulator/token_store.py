"""The simulated platform's issued access tokens: lifetimes, grace periods and forced refreshes
(the rules are in :mod:`bot.simulator.tokens`)."""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.simulator.errors import ApiError, Platform

TTL_SECONDS = 7200
OA_GRACE_SECONDS = 300
FORCE_REFRESH_PER_DAY = 20
FORCE_REFRESH_SPACING = 30


@dataclass
class IssuedToken:
    value: str
    kind: str  # "wecom" | "mp" | "mp_stable"
    expires_at: datetime
    valid_until: datetime  # < expires_at once superseded (OA grace) or revoked
    revoked: bool = False

    @property
    def platform(self) -> Platform:
        return "wecom" if self.kind == "wecom" else "mp"


class TokenStore:
    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._tokens: dict[str, IssuedToken] = {}
        self._current: dict[str, IssuedToken] = {}
        self.force_refreshes: list[datetime] = []

    def _new(self, kind: str) -> IssuedToken:
        now = self._clock.now()
        value = "".join(self._rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(96))
        expires = now + timedelta(seconds=TTL_SECONDS)
        token = IssuedToken(value=value, kind=kind, expires_at=expires, valid_until=expires)
        self._tokens[value] = token
        self._current[kind] = token
        return token

    def _alive(self, kind: str) -> IssuedToken | None:
        cur = self._current.get(kind)
        if cur is None or cur.revoked or self._clock.now() >= cur.valid_until:
            return None
        return cur

    def expires_in(self, token: IssuedToken) -> int:
        return max(0, math.ceil((token.expires_at - self._clock.now()).total_seconds()))

    def issue_wecom(self) -> IssuedToken:
        return self._alive("wecom") or self._new("wecom")

    def issue_mp(self) -> IssuedToken:
        old = self._current.get("mp")
        if old is not None:
            grace = self._clock.now() + timedelta(seconds=OA_GRACE_SECONDS)
            old.valid_until = min(old.valid_until, grace)
        return self._new("mp")

    def issue_stable(self, force: bool) -> IssuedToken:
        if force:
            self._check_force_quota()
            old = self._current.get("mp_stable")
            if old is not None:
                old.valid_until = self._clock.now()
            self.force_refreshes.append(self._clock.now())
            return self._new("mp_stable")
        cur = self._alive("mp_stable")
        if cur is not None and self.expires_in(cur) > OA_GRACE_SECONDS:
            return cur
        return self._new("mp_stable")  # renewal: the old token stays valid until it expires

    def _check_force_quota(self) -> None:
        now = self._clock.now()
        recent = [t for t in self.force_refreshes if now - t < timedelta(days=1)]
        if len(recent) >= FORCE_REFRESH_PER_DAY:
            raise ApiError(45009, "reach max api daily quota limit")
        if recent and now - recent[-1] < timedelta(seconds=FORCE_REFRESH_SPACING):
            raise ApiError(45011, "api minute-quota reach limit  mustslower  retry next minute")

    def revoke_all(self) -> None:
        """Invalidate every token early (WeCom "may invalidate a token early", docs/platform.md#wecom-tokens)."""
        for token in self._tokens.values():
            token.revoked = True

    def check(self, platform: Platform, value: str | None) -> None:
        """41001 missing, 40014 unknown, 42001 expired; OA superseded/revoked → 40001 "not latest"."""
        if not value:
            raise ApiError(41001, "access_token missing")
        token = self._tokens.get(value)
        if token is None or token.platform != platform:
            raise ApiError(40014, "invalid access_token")
        now = self._clock.now()
        if now >= token.expires_at:
            raise ApiError(42001, "access_token expired")
        if token.revoked and platform == "wecom":
            raise ApiError(40014, "invalid access_token")
        if token.revoked or now >= token.valid_until:
            raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
