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

from typing import TYPE_CHECKING, Any

from bot.simulator.api import GET, POST, ApiError, ApiRequest, Route

if TYPE_CHECKING:
    from bot.simulator.state import SimState


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
    """OA ``GET /cgi-bin/token`` (docs/platform.md#oa-tokens-and-quotas): a new token each call;
    the previous one lives 5 more minutes."""
    q = req.query
    _check_app(state, q.get("grant_type"), q.get("appid"), q.get("secret"))
    token = state.tokens.issue_mp()
    return {"access_token": token.value, "expires_in": state.tokens.expires_in(token)}


def mp_stable_token(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """OA ``POST /cgi-bin/stable_token`` (docs/platform.md#oa-tokens-and-quotas);
    ``force_refresh`` must be a JSON boolean."""
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
