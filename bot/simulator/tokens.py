"""access_token issuing and checking, per docs/platform.md#access-tokens-and-rate-limits.

* WeCom ``gettoken`` ([W:91039]): 7200 s; re-fetching within validity returns the same token (the
  older doc wording, docs/platform.md#wecom-tokens — the 2024 page is silent, we keep the documented behaviour).
* OA ``token``
  (docs/platform.md#oa-tokens-and-quotas): every fetch issues a new token; the previous one keeps working for 5 minutes.
* OA ``stable_token``
  (docs/platform.md#oa-tokens-and-quotas, [MP:doc/service/api/base/api_getstableaccesstoken]): isolated from
  ``token``; normal mode returns the current token and renews it 5 minutes before expiry (old and new
  both valid meanwhile); ``force_refresh`` invalidates the previous token at once, at most 20 times a
  day with ≥ 30 s between calls.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.clock import Clock
from bot.simulator.api import GET, POST, ApiError, ApiRequest, Platform, Route

if TYPE_CHECKING:
    from bot.simulator.state import SimState

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


def gettoken(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """WeCom ``GET /cgi-bin/gettoken`` ([W:91039]): 41002/41004 missing, 40013 corpid, 40001 secret."""
    corpid, secret = req.query.get("corpid"), req.query.get("corpsecret")
    if not corpid:
        raise ApiError(41002, "corpid missing")
    if not secret:
        raise ApiError(41004, "corpsecret missing")
    if corpid != state.accounts.corp_id:
        raise ApiError(40013, "invalid corpid")
    if secret != state.accounts.corp_secret:
        raise ApiError(40001, "invalid credential")
    token = state.tokens.issue_wecom()
    return {"access_token": token.value, "expires_in": state.tokens.expires_in(token)}


def _check_app(state: SimState, grant_type: object, appid: object, secret: object) -> None:
    """OA credential checks (commErrCode): 40002 grant_type, 41002/41004 missing, 40013, 40125."""
    if grant_type != "client_credential":
        raise ApiError(40002, "invalid grant_type")
    if not appid:
        raise ApiError(41002, "appid missing")
    if not secret:
        raise ApiError(41004, "appsecret missing")
    if appid != state.accounts.app_id:
        raise ApiError(40013, "invalid appid")
    if secret != state.accounts.app_secret:
        raise ApiError(40125, "invalid appsecret")


def mp_token(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """OA ``GET /cgi-bin/token``
    (docs/platform.md#oa-tokens-and-quotas): a new token each call, the previous one lives 5 more minutes."""
    q = req.query
    _check_app(state, q.get("grant_type"), q.get("appid"), q.get("secret"))
    token = state.tokens.issue_mp()
    return {"access_token": token.value, "expires_in": state.tokens.expires_in(token)}


def mp_stable_token(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """OA ``POST /cgi-bin/stable_token``
    (docs/platform.md#oa-tokens-and-quotas); ``force_refresh`` must be a JSON boolean."""
    b = req.body
    _check_app(state, b.get("grant_type"), b.get("appid"), b.get("secret"))
    force = b.get("force_refresh", False)
    if not isinstance(force, bool):
        raise ApiError(40097, "invalid args")
    token = state.tokens.issue_stable(force)
    return {"access_token": token.value, "expires_in": state.tokens.expires_in(token)}


WECOM_ROUTES = {"gettoken": Route(gettoken, GET, auth=False)}
MP_ROUTES = {
    "token": Route(mp_token, GET, auth=False, envelope=False),
    "stable_token": Route(mp_stable_token, POST, auth=False, envelope=False),
}
