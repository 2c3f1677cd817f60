"""JSON endpoints of the H5 pages. Each call: session cookie → CSRF header (state-changing calls) →
per-customer rate limit → one transaction running the business function
(:class:`~handlers.interactions.h5.core.H5Actions`).

* ``GET  /h5/api/me`` → ``{balance, streak, checked_in_today}``
* ``POST /h5/api/checkin`` → ``{ok, status, text, me}``
* ``POST /h5/api/lottery/<campaign>/draw`` → ``{ok, outcome, text, prize, me}``
* ``POST /h5/api/invite`` → ``{ok, code, qr_url}`` (the personal referral code; created on first call, so
  a POST with the CSRF header: a GET never changes anything)

401: no or expired session (the page reloads and signs in again); 403: CSRF token missing or wrong;
429: rate limited (``Retry-After``).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.context import Context
from handlers.interactions.h5.core import H5, H5_STATE, json_response
from handlers.interactions.h5.pages import ID_CHARS
from handlers.interactions.h5.session import CSRF_HEADER, Session

Action = Callable[[H5, Session, web.Request], Awaitable[dict[str, Any]]]


def _guard(action: Action, *, changes_state: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def endpoint(request: web.Request) -> web.Response:
        h5 = request.app[H5_STATE]
        session = h5.session(request)
        if session is None:
            return json_response({"ok": False, "error": "请重新打开页面登录"}, 401)
        if changes_state and not h5.signer.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            return json_response({"ok": False, "error": "页面已过期，请刷新后再试"}, 403)
        wait = h5.limiter.take(f"c{session.customer_id}")
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            return json_response({"ok": False, "error": "点得太快啦，稍等一下再试"}, 429, **{"Retry-After": retry})
        return json_response(await action(h5, session, request))

    return endpoint


def _scope(kind: str, session: Session) -> str:
    return f"h5:{kind}:{session.customer_id}:{secrets.token_hex(6)}"


async def _me(h5: H5, session: Session, request: web.Request) -> dict[str, Any]:
    async def run(ctx: Context) -> dict[str, Any]:
        return await h5.actions.me(ctx, session.customer_id)

    return await h5.run(run, _scope("me", session))


async def _check_in(h5: H5, session: Session, request: web.Request) -> dict[str, Any]:
    async def run(ctx: Context) -> dict[str, Any]:
        return await h5.actions.check_in(ctx, session.customer_id)

    return await h5.run(run, _scope("checkin", session))


async def _draw(h5: H5, session: Session, request: web.Request) -> dict[str, Any]:
    campaign_id = request.match_info["campaign"]
    if not campaign_id or len(campaign_id) > 64 or not set(campaign_id) <= ID_CHARS:
        return {"ok": False, "error": "活动不存在"}

    async def run(ctx: Context) -> dict[str, Any]:
        return await h5.actions.draw(ctx, session.customer_id, campaign_id)

    return await h5.run(run, _scope(f"draw:{campaign_id}", session))


async def _invite(h5: H5, session: Session, request: web.Request) -> dict[str, Any]:
    async def run(ctx: Context) -> dict[str, Any]:
        return await h5.actions.invite(ctx, session.customer_id)

    return await h5.run(run, _scope("invite", session))


def add_api_routes(app: web.Application) -> None:
    app.router.add_get("/h5/api/me", _guard(_me, changes_state=False))
    app.router.add_post("/h5/api/checkin", _guard(_check_in, changes_state=True))
    app.router.add_post("/h5/api/lottery/{campaign}/draw", _guard(_draw, changes_state=True))
    app.router.add_post("/h5/api/invite", _guard(_invite, changes_state=True))
