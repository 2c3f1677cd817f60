"""Sign-in, sessions, CSRF and roles of the console.

* A session is a row (:class:`~handlers.console.tables.ConsoleSession`) holding the SHA-256 of a random
  token; the browser holds the token in an HttpOnly, SameSite=Strict cookie on ``/console`` (Secure when
  ``server.public_base_url`` is https). Disabling a user or resetting the password ends their sessions.
* Every POST carries the session's CSRF token in a hidden ``csrf`` field, compared in constant time; the
  sign-in form (no session yet) uses a double-submit cookie. A POST without it changes nothing (403).
* Sign-in attempts are throttled per account and per address (429 with Retry-After).
* Roles map to the admin API's scopes (:data:`handlers.console.users.SCOPE_OF_ROLE`); a page or action
  needs the scope its API route needs.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import delete, select

from handlers.api.http import Problem
from handlers.api.keys import Caller, allows
from handlers.console.core import CONSOLE, PREFIX, Console
from handlers.console.i18n import t
from handlers.console.tables import ConsoleSession, ConsoleUser
from handlers.console.users import find_user, password_matches, scope_of

COOKIE = "siyu_console"
LOGIN_COOKIE = "siyu_console_login"
SESSION_TTL = timedelta(hours=12)
MAX_FIELD = 1024


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of one request."""

    id: int
    email: str
    role: str
    csrf: str

    @property
    def scope(self) -> str:
        return scope_of(self.role)

    def may(self, scope: str) -> bool:
        return allows(self.scope, scope)

    @property
    def caller(self) -> Caller:
        """Who the admin API's functions (and its audit log) see: ``console:<email>``."""
        return Caller(self.id, f"console:{self.email}"[:64], self.scope, via_key=False)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def viewer_of(request: web.Request) -> Viewer | None:
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > 128:
        return None
    console = request.app[CONSOLE]
    query = (
        select(ConsoleSession, ConsoleUser)
        .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
        .where(ConsoleSession.token_hash == _digest(token))
    )
    async with console.services.sessions() as session:
        found = (await session.execute(query)).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= console.now() or user.disabled_at is not None:
        return None
    return Viewer(user.id, user.email, user.role, row.csrf)


Page = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]


def error_page(request: web.Request, status: int, message: str, viewer: Viewer | None = None) -> web.Response:
    return request.app[CONSOLE].render("error.html", http_status=status, message=message, viewer=viewer)


def page(scope: str = "read") -> Callable[[Page], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A console page or action for users whose role grants ``scope``; a POST needs the CSRF token."""

    def wrap(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            viewer = await viewer_of(request)
            if viewer is None:
                if request.method == "GET":
                    return see_other(f"{PREFIX}/login?{urlencode({'next': str(request.rel_url)})}")
                return error_page(request, 401, t("login.title"))
            if request.method == "POST" and not await csrf_ok(request, viewer.csrf):
                return error_page(request, 403, t("error.csrf"), viewer)
            if not viewer.may(scope):
                role = t(f"role.{viewer.role}")
                return error_page(request, 403, t("error.forbidden", role=role, needed=scope), viewer)
            try:
                return await handler(request, viewer)
            except Problem as problem:  # the API's refusal (404, 409, 400): its words, nothing changed
                return error_page(request, problem.status, problem.detail or problem.title, viewer)

        return serve

    return wrap


async def csrf_ok(request: web.Request, expected: str) -> bool:
    form = await request.post()
    presented = form.get("csrf")
    return isinstance(presented, str) and bool(expected) and hmac.compare_digest(presented, expected)


# --- sign in and out ---


def _safe_next(raw: str | None) -> str:
    """Only a path of the console (never another host: ``//evil`` or ``/\\evil``)."""
    if raw and raw.startswith(PREFIX + "/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return PREFIX + "/"


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login(request, 200, "")


def _login(request: web.Request, status: int, message: str) -> web.Response:
    console = request.app[CONSOLE]
    token = secrets.token_urlsafe(24)
    response = console.render(
        "login.html", http_status=status, csrf=token, message=message, next=_safe_next(request.query.get("next"))
    )
    response.set_cookie(
        LOGIN_COOKIE, token, path=PREFIX, httponly=True, secure=console.secure_cookies, samesite="Strict"
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    form = await request.post()
    if not await csrf_ok(request, request.cookies.get(LOGIN_COOKIE, "")):
        return error_page(request, 403, t("error.csrf"))
    email, password = (str(form.get(k, ""))[:MAX_FIELD] for k in ("email", "password"))
    wait = max(console.per_account.take(email.strip().lower()), console.per_address.take(request.remote or "?"))
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        response = _login(request, 429, t("login.throttled", seconds=seconds))
        response.headers["Retry-After"] = str(seconds)
        return response
    async with console.services.sessions() as session, session.begin():
        user = await find_user(session, email)
        ok = password_matches(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled_at is not None:
            return _login(request, 401, t("login.failed"))
        token, now = secrets.token_urlsafe(32), console.now()
        session.add(
            ConsoleSession(
                token_hash=_digest(token),
                user_id=user.id,
                csrf=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + SESSION_TTL,
            )
        )
        await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        user.last_login_at = now
    response = see_other(_safe_next(str(form.get("next", ""))))
    response.set_cookie(
        COOKIE, token, path=PREFIX, httponly=True, secure=console.secure_cookies, samesite="Strict",
        max_age=int(SESSION_TTL.total_seconds()),
    )  # fmt: skip
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@page("read")
async def logout(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    token = request.cookies.get(COOKIE, "")
    async with request.app[CONSOLE].services.sessions() as session, session.begin():
        await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
    response = see_other(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


__all__ = ["Console", "Viewer", "login", "login_form", "logout", "page", "viewer_of"]
