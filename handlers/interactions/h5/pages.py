"""The two H5 pages, rendered on the server with the customer's numbers (one round trip, no build step).

``/h5/checkin`` and ``/h5/lottery/<campaign>``: mobile-first HTML, one stylesheet and one script from
``/h5/static`` (a strict CSP allows nothing inline). Buttons POST to the JSON API with the CSRF token
from ``<meta name="csrf-token">``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from bot.context import Context
from handlers.interactions.h5.core import H5_STATE, secured
from handlers.interactions.h5.oauth import send_to_authorize

ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _document(title: str, csrf: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1,viewport-fit=cover">'
        f'<meta name="csrf-token" content="{escape(csrf)}"><title>{escape(title)}</title>'
        '<link rel="stylesheet" href="/h5/static/h5.css"></head>'
        f'<body><main class="card">{body}</main><script src="/h5/static/h5.js" defer></script></body></html>'
    )


def _stats(me: dict[str, Any]) -> str:
    return (
        '<div class="stats">'
        f'<div><span class="num" id="streak">{int(me["streak"])}</span><span class="label">连续签到（天）</span></div>'
        f'<div><span class="num" id="balance">{int(me["balance"])}</span><span class="label">我的积分</span></div>'
        "</div>"
    )


def checkin_body(me: dict[str, Any]) -> str:
    done = bool(me["checked_in_today"])
    label = "今日已签到" if done else "立即签到"
    return (
        '<h1>每日签到</h1><p class="hint">每天签到领积分，连签有额外奖励。</p>'
        + _stats(me)
        + '<button id="action" class="primary" data-action="/h5/api/checkin" data-done-label="今日已签到"'
        + f"{' disabled' if done else ''}>{label}</button>"
        + '<p id="result" class="result" role="status" aria-live="polite" hidden></p>'
    )


def lottery_body(campaign_id: str, name: str, me: dict[str, Any]) -> str:
    action = f"/h5/api/lottery/{campaign_id}/draw"
    return (
        f'<h1>{escape(name)}</h1><p class="hint">点下面的按钮，试试今天的手气。</p>'
        + _stats(me)
        + f'<button id="action" class="primary" data-action="{escape(action)}" data-again="1">抽奖</button>'
        + '<p id="result" class="result" role="status" aria-live="polite" hidden></p>'
    )


async def checkin_page(request: web.Request) -> web.Response:
    h5 = request.app[H5_STATE]
    session = h5.session(request)
    if session is None:
        return await send_to_authorize(h5, "/h5/checkin")

    async def load(ctx: Context) -> dict[str, Any]:
        return await h5.actions.me(ctx, session.customer_id)

    me = await h5.run(load, scope=f"h5:page:{session.customer_id}")
    html = _document("每日签到", h5.signer.csrf_token(session), checkin_body(me))
    return secured(web.Response(text=html, content_type="text/html"))


async def lottery_page(request: web.Request) -> web.Response:
    h5 = request.app[H5_STATE]
    campaign_id = request.match_info["campaign"]
    if not campaign_id or len(campaign_id) > 64 or not set(campaign_id) <= ID_CHARS:
        raise web.HTTPNotFound()
    session = h5.session(request)
    if session is None:
        return await send_to_authorize(h5, f"/h5/lottery/{campaign_id}")

    async def load(ctx: Context) -> tuple[str | None, dict[str, Any]]:
        return h5.actions.campaign_name(ctx, campaign_id), await h5.actions.me(ctx, session.customer_id)

    name, me = await h5.run(load, scope=f"h5:page:{session.customer_id}")
    if name is None:
        raise web.HTTPNotFound()
    html = _document(name, h5.signer.csrf_token(session), lottery_body(campaign_id, name, me))
    return secured(web.Response(text=html, content_type="text/html"))
