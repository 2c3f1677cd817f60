"""Official Account web authorisation (网页授权) as WeChat plays it for a browser.

* ``GET /connect/oauth2/authorize?appid&redirect_uri&response_type=code&scope&state`` (the browser never
  sends ``#wechat_redirect``): the WeChat user at the browser is ``state.web_user`` (an openid the test
  sets); snsapi_base shows no consent page, so it 302s to ``redirect_uri?code=CODE&state=STATE`` at once.
  Not inside WeChat (``web_user`` unset) → the "请在微信客户端打开链接" page. Errors are pages, as on
  the real site: 10003 redirect_uri missing/invalid, 10005 scope, 10016/appid unknown.
* ``GET /mp/sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`` → ``access_token``,
  ``expires_in`` 7200, ``refresh_token``, ``openid``, ``scope``. A code works once (40163 "code been
  used") and for 5 minutes (40029 "invalid code"); 40002 grant_type, 40013 appid, 40125 app secret.

Point the bot at it with ``official_account.oauth_base_url = <simulator base URL>`` (the rig does).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from bot.simulator.state import RecordedCall, SimState

CODE_TTL = timedelta(minutes=5)
SCOPES = {"snsapi_base", "snsapi_userinfo"}


def _page(status: int, text: str) -> web.Response:
    html = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>微信</title></head>'
        f"<body><p>{text}</p></body></html>"
    )
    return web.Response(status=status, text=html, content_type="text/html")


def authorize(state: SimState, query: dict[str, str]) -> web.Response:
    redirect_uri = query.get("redirect_uri", "")
    if query.get("appid") != state.accounts.app_id:
        return _page(200, "10016 appid 无效")
    if not redirect_uri or urlsplit(redirect_uri).scheme not in {"http", "https"}:
        return _page(200, "10003 redirect_uri 参数错误")
    if query.get("response_type") != "code" or query.get("scope") not in SCOPES:
        return _page(200, "10005 此公众号并没有这些scope的权限")
    if state.web_user is None:
        return _page(200, "请在微信客户端打开链接")
    code = state.new_id("0", 31)
    state.oauth_codes[code] = (state.web_user, state.now(), False)
    joiner = "&" if "?" in redirect_uri else "?"
    target = redirect_uri + joiner + urlencode({"code": code, "state": query.get("state", "")})
    return web.Response(status=302, headers={"Location": target})


def access_token(state: SimState, query: dict[str, str]) -> dict[str, Any]:
    if query.get("grant_type") != "authorization_code":
        return {"errcode": 40002, "errmsg": "invalid grant_type"}
    if query.get("appid") != state.accounts.app_id:
        return {"errcode": 40013, "errmsg": "invalid appid"}
    if query.get("secret") != state.accounts.app_secret:
        return {"errcode": 40125, "errmsg": "invalid appsecret"}
    issued = state.oauth_codes.get(query.get("code", ""))
    if issued is None or state.now() - issued[1] >= CODE_TTL:
        return {"errcode": 40029, "errmsg": "invalid code"}
    openid, at, used = issued
    if used:
        return {"errcode": 40163, "errmsg": "code been used"}
    state.oauth_codes[query["code"]] = (openid, at, True)
    return {
        "access_token": state.new_id("", 86),
        "expires_in": 7200,
        "refresh_token": state.new_id("", 86),
        "openid": openid,
        "scope": "snsapi_base",
        "is_snapshotuser": 0,
    }


def add_oauth_routes(app: web.Application, key: web.AppKey[SimState]) -> None:
    async def authorize_page(request: web.Request) -> web.Response:
        return authorize(request.app[key], dict(request.query))

    async def sns_access_token(request: web.Request) -> web.Response:
        state = request.app[key]
        query = dict(request.query)
        answer = access_token(state, query)
        shown = {k: ("***" if k == "secret" else v) for k, v in query.items()}
        api = "sns/oauth2/access_token"
        state.calls.append(RecordedCall(state.now(), "mp", "GET", api, request.path, shown, None, 200, answer))
        return web.json_response(answer)

    app.router.add_get("/connect/oauth2/authorize", authorize_page)
    app.router.add_get("/mp/sns/oauth2/access_token", sns_access_token)
