"""Shared pieces of the H5 pages: what they may do (:class:`H5Actions`), per-app state, sessions, headers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web

from bot.actions import run_action
from bot.context import Context
from bot.h5.ratelimit import TokenBucket
from bot.h5.session import SESSION_COOKIE, SESSION_TTL, Session, Signer

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


class H5Actions(Protocol):
    """Business functions behind the pages (``handlers.h5_actions`` as a module); each runs in one
    transaction, gets a signed-in customer id and returns JSON-ready dicts."""

    async def customer_for_openid(self, ctx: Context, openid: str) -> int: ...
    async def me(self, ctx: Context, customer_id: int) -> dict[str, Any]: ...
    async def check_in(self, ctx: Context, customer_id: int) -> dict[str, Any]: ...
    async def draw(self, ctx: Context, customer_id: int, campaign_id: str) -> dict[str, Any]: ...
    async def invite(self, ctx: Context, customer_id: int) -> dict[str, Any]: ...
    def campaign_name(self, ctx: Context, campaign_id: str) -> str | None: ...


@dataclass
class H5:
    services: Any  # bot.app.Services
    actions: H5Actions
    signer: Signer
    limiter: TokenBucket = field(default_factory=TokenBucket)

    @property
    def secure_cookies(self) -> bool:
        return bool(self.services.settings.server.public_base_url.startswith("https://"))

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


def json_response(data: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    response = web.json_response(data, status=status, headers=headers or None)
    secured(response)
    return response
