"""Shared pieces of the H5 pages: what they may do (:class:`H5Actions`), per-app state, sessions, headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web

from bot.actions import run_action
from bot.context import Context
from handlers.interactions.h5.ratelimit import TokenBucket
from handlers.interactions.h5.session import SESSION_COOKIE, SESSION_TTL, Session, Signer
from handlers.interactions.h5.states import OAuthStates

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R", bound=web.StreamResponse)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # never leak ?code= to a third party
    "Cache-Control": "no-store",
}
HSTS = "max-age=31536000"  # one year; no includeSubDomains: other hosts of the domain are not ours to pin


class H5Actions(Protocol):
    """Business functions behind the pages (``handlers.interactions.h5.actions`` as a module); each runs in one
    transaction, gets a signed-in customer id and returns JSON-ready dicts."""

    async def customer_for_openid(self, ctx: Context, openid: str) -> int: ...
    async def me(self, ctx: Context, customer_id: int) -> dict[str, Any]: ...
    async def check_in(self, ctx: Context, customer_id: int) -> dict[str, Any]: ...
    async def draw(self, ctx: Context, customer_id: int, campaign_id: str) -> dict[str, Any]: ...
    async def invite(self, ctx: Context, customer_id: int) -> dict[str, Any]: ...
    def campaign_name(self, ctx: Context, campaign_id: str) -> str | None: ...


@dataclass
class H5:
    services: Any  # bot.services.Services
    actions: H5Actions
    signer: Signer
    limiter: TokenBucket = field(default_factory=TokenBucket)

    @property
    def secure_cookies(self) -> bool:
        return bool(self.services.settings.server.public_base_url.startswith("https://"))

    @property
    def states(self) -> OAuthStates:
        return OAuthStates(self.services.engine, self.services.clock)  # the engine exists once the app runs

    def session(self, request: web.Request) -> Session | None:
        return self.signer.read_session(request.cookies.get(SESSION_COOKIE), self.services.clock.now())

    def sign_in(self, response: web.StreamResponse, customer_id: int) -> None:
        value = self.signer.session_cookie(customer_id, self.services.clock.now())
        response.set_cookie(
            SESSION_COOKIE, value, max_age=int(SESSION_TTL.total_seconds()), path="/h5",
            httponly=True, secure=self.secure_cookies, samesite="Lax",
        )  # fmt: skip

    async def run(self, fn: Callable[[Context], Awaitable[T]], scope: str) -> T:
        return await run_action(self.services, fn, scope=scope)


H5_STATE: web.AppKey[H5] = web.AppKey("h5", H5)


def secured(response: R) -> R:
    response.headers.update(SECURITY_HEADERS)
    return response


def is_h5(path: str) -> bool:
    return path == "/h5" or path.startswith("/h5/")


async def secure_h5_responses(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer under /h5 — pages, API, static files, 404s, 405s, errors — gets
    the security headers, plus ``Strict-Transport-Security`` when ``public_base_url`` is https."""
    if not is_h5(request.path):
        return
    secured(response)
    if request.app[H5_STATE].secure_cookies:
        response.headers["Strict-Transport-Security"] = HSTS


def json_response(data: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    response = web.json_response(data, status=status, headers=headers or None)
    secured(response)
    return response
