"""Official Account web authorisation (网页授权, ``snsapi_base``): who is this browser?

1. No session → 302 to ``<oauth_base_url>/connect/oauth2/authorize?appid=APPID&redirect_uri=<urlencoded
   public_base_url/h5/oauth>&response_type=code&scope=snsapi_base&state=STATE#wechat_redirect``. WeChat
   checks the parameters in exactly this order; ``state`` is ``[a-zA-Z0-9]`` ≤ 128 bytes;
   ``#wechat_redirect`` is required. snsapi_base shows no consent page.
2. WeChat redirects to ``/h5/oauth?code=CODE&state=STATE`` (code: once, 5 minutes). The state must match
   this browser's signed cookie and is consumed server-side (single use, 10 minutes:
   :mod:`handlers.interactions.h5.states`).
3. ``MpClient.sns_oauth2_access_token(code)`` → ``openid`` → customer → signed session cookie → ``next``.
Doc: developers.weixin.qq.com/doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from bot.context import Context
from bot.platform.errors import PlatformError
from bot.platform.mp import MpClient
from handlers.interactions.h5.core import H5, H5_STATE, secured
from handlers.interactions.h5.session import OAUTH_COOKIE, OAUTH_TTL

log = logging.getLogger(__name__)
CALLBACK_PATH = "/h5/oauth"


def authorize_url(h5: H5, state: str) -> str:
    cfg = h5.services.settings
    redirect = cfg.server.public_base_url.rstrip("/") + CALLBACK_PATH
    return (
        f"{cfg.official_account.oauth_base_url.rstrip('/')}/connect/oauth2/authorize"
        f"?appid={quote(cfg.official_account.app_id, safe='')}&redirect_uri={quote(redirect, safe='')}"
        f"&response_type=code&scope=snsapi_base&state={state}#wechat_redirect"
    )


async def send_to_authorize(h5: H5, next_path: str) -> web.Response:
    state = await h5.states.issue()
    cookie = h5.signer.oauth_cookie(state, next_path)
    response = web.Response(status=302, headers={"Location": authorize_url(h5, state)})
    response.set_cookie(
        OAUTH_COOKIE, cookie, max_age=int(OAUTH_TTL.total_seconds()), path="/h5",
        httponly=True, secure=h5.secure_cookies, samesite="Lax",
    )  # fmt: skip
    secured(response)
    return response


def _problem(status: int, text: str) -> web.Response:
    body = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"><title>出错了</title>'
        f'<link rel="stylesheet" href="/h5/static/h5.css"></head><body><main class="card"><p>{text}</p>'
        "</main></body></html>"
    )
    return secured(web.Response(status=status, text=body, content_type="text/html"))


async def oauth_callback(request: web.Request) -> web.Response:
    h5 = request.app[H5_STATE]
    code, state = request.query.get("code"), request.query.get("state")
    next_path = h5.signer.read_oauth(request.cookies.get(OAUTH_COOKIE), state)
    if next_path is None or not next_path.startswith("/h5/"):
        return _problem(400, "链接已失效，请回到公众号重新打开页面。")
    if not await h5.states.consume(state or ""):  # used already, or older than OAUTH_TTL
        return _problem(400, "链接已失效，请回到公众号重新打开页面。")
    if not code:
        return _problem(403, "需要授权才能继续，请回到公众号重新打开页面。")
    client = h5.services.clients.get("mp")
    if not isinstance(client, MpClient):
        return _problem(503, "服务暂不可用，请稍后再试。")
    try:
        answer = await client.sns_oauth2_access_token(code)
    except PlatformError as exc:
        log.warning("web authorisation failed: %s", exc)
        return _problem(403, "授权已过期，请回到公众号重新打开页面。")
    openid = answer.get("openid")
    if not isinstance(openid, str) or not openid:
        return _problem(403, "授权失败，请回到公众号重新打开页面。")

    async def sign_up(ctx: Context) -> int:
        return await h5.actions.customer_for_openid(ctx, openid)

    customer_id = await h5.run(sign_up, scope=f"h5:oauth:{openid}")
    response = web.Response(status=302, headers={"Location": next_path})
    h5.sign_in(response, customer_id)
    response.del_cookie(OAUTH_COOKIE, path="/h5")
    secured(response)
    return response
