"""The admin API's HTTP machinery: keys and scopes, rate limits, problem details, cursors, ETags, audit.

* Every route is a :class:`Route` (method, path, scope, handler and what the OpenAPI document says of it);
  :func:`serve` wraps its handler: ``Authorization: Bearer <key>`` (401 without a live key), the scope
  (403 when the key's is lower: read < write < admin), the key's token bucket (429 with ``Retry-After``).
* Errors are RFC 9457 problem details (``application/problem+json``): raise :class:`Problem`.
* Lists are cursor-paginated: ``?limit=&cursor=`` → ``{"items": [...], "next_cursor": ...}``; the cursor
  is opaque (url-safe base64 of the last item's sort key).
* Single resources carry a strong ``ETag`` (a hash of the body); ``If-None-Match`` with it answers 304.
* Writes add an :class:`~handlers.api.tables.AuditEntry` in their own transaction.

The key itself is never logged, stored or echoed: only its hash is looked up, and errors name the key by
its name at most.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import Services
from handlers.api.keys import Caller, allows, authenticate, touch
from handlers.api.tables import AuditEntry

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
PROBLEM_JSON = "application/problem+json"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
TOUCH_EVERY_SECONDS = 60.0  # last_used_at is written at most this often per key


class Problem(Exception):
    """An RFC 9457 problem: ``status``, ``title``, ``detail`` and, for validation, ``errors``."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors
        self.headers = dict(headers or {})


def invalid(field_name: str, reason: str) -> Problem:
    return Problem(400, "Invalid request", f"{field_name}: {reason}", errors=[{"field": field_name, "reason": reason}])


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"{what} does not exist")


def problem_response(problem: Problem) -> web.Response:
    body: dict[str, Any] = {
        "type": f"https://siyu-bot.dev/problems/{problem.status}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail or problem.title,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return web.Response(
        status=problem.status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, default=_default, sort_keys=True)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=dumps(body), content_type="application/json")


def resource_response(request: web.Request, body: Any) -> web.Response:
    """One resource with its strong ETag; 304 when ``If-None-Match`` names it (or is ``*``)."""
    text = dumps(body)
    tag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    wanted = [t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")]
    if tag in wanted or "*" in wanted:
        return web.Response(status=304, headers={"ETag": tag})
    return web.Response(text=text, content_type="application/json", headers={"ETag": tag})


# --- pagination ---


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(dumps(key).encode()).decode().rstrip("=")


def decode_cursor(request: web.Request) -> list[Any] | None:
    raw = request.query.get("cursor")
    if not raw:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise invalid("cursor", "not a cursor this API handed out") from None
    if not isinstance(key, list) or not key:
        raise invalid("cursor", "not a cursor this API handed out")
    return key


def limit_of(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def page(items: list[Any], limit: int, key: Callable[[Any], list[Any]]) -> dict[str, Any]:
    """``items`` holds up to ``limit + 1`` rows: the extra one says there is a next page."""
    more = len(items) > limit
    shown = items[:limit]
    return {"items": shown, "next_cursor": encode_cursor(key(shown[-1])) if more and shown else None}


def id_cursor(request: web.Request) -> int | None:
    """The cursor of a list walked by id (``[id]``), or None on the first page."""
    cursor = decode_cursor(request)
    if cursor is None:
        return None
    if not isinstance(cursor[0], int):
        raise invalid("cursor", "not a cursor this API handed out")
    return cursor[0]


def query_int(request: web.Request, name: str, low: int, high: int, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise invalid(name, f"must be an integer from {low} to {high}")
    return int(raw)


def query_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is not None and raw not in choices:
        raise invalid(name, f"must be one of {', '.join(choices)}")
    return raw


def query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise invalid(name, "must be an ISO-8601 time with a UTC offset, e.g. 2026-11-23T18:00:00+08:00")
    return when


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise invalid("body", "must be a JSON document") from None


# --- routes, keys, scopes, rate limits ---


@dataclass(frozen=True)
class Call:
    """One authenticated request: the aiohttp request, who calls, and the app's services."""

    request: web.Request
    caller: Caller
    services: Services

    def param(self, name: str) -> str:
        return self.request.match_info[name]

    def int_param(self, name: str) -> int:
        raw = self.request.match_info[name]
        if not raw.isdigit() or len(raw) > 18:
            raise not_found(f"{name} {raw}")
        return int(raw)


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One API route and what the OpenAPI document says of it (:mod:`handlers.api.openapi`)."""

    method: str
    path: str  # aiohttp's, under /api/v1 (``{id:\\d+}``); the document drops the patterns
    scope: str | None  # None: no key needed (the OpenAPI document)
    handler: Handler | Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    responses: Mapping[int, str | None]  # status → component schema name (None: no body)
    query: Mapping[str, str] = field(default_factory=dict)  # parameter → description
    body: str | None = None  # request body schema name
    paginated: bool = False
    etag: bool = False


class TokenBuckets:
    """Per key: ``rate`` requests a second on average, ``burst`` at once (in memory, per process)."""

    def __init__(self, rate: float, burst: int, now: Callable[[], float]) -> None:
        self._rate, self._burst, self._now = rate, float(burst), now
        self._buckets: dict[int, tuple[float, float]] = {}

    def take(self, key_id: int) -> float:
        """0 when the request may go; otherwise the seconds until it may."""
        now = self._now()
        tokens, at = self._buckets.get(key_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1:
            self._buckets[key_id] = (tokens - 1, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1 - tokens) / self._rate


class Gate:
    """Authentication, scope and rate limit in front of every keyed route."""

    def __init__(self, services: Services) -> None:
        self._services = services
        cfg = services.settings.api
        self.buckets = TokenBuckets(cfg.rate_per_second, cfg.burst, lambda: services.clock.now().timestamp())
        self._touched: dict[int, float] = {}

    async def caller(self, request: web.Request) -> Caller:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise _unauthorized("send the API key as Authorization: Bearer <key>")
        async with self._services.sessions() as session:
            caller = await authenticate(session, presented.strip())
        if caller is None:
            raise _unauthorized("the API key is unknown or revoked")
        return caller

    async def admit(self, request: web.Request, scope: str) -> Caller:
        caller = await self.caller(request)
        if not allows(caller.scope, scope):
            raise Problem(403, "Insufficient scope", f"this route needs the {scope} scope; the key has {caller.scope}")
        wait = self.buckets.take(caller.id)
        if wait > 0:
            raise Problem(
                429,
                "Too many requests",
                f"the key's rate limit is {self._services.settings.api.rate_per_second:g}/s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        await self._touch(caller)
        return caller

    async def _touch(self, caller: Caller) -> None:
        now = self._services.clock.now()
        last = self._touched.get(caller.id)
        if last is not None and now.timestamp() - last < TOUCH_EVERY_SECONDS:
            return
        self._touched[caller.id] = now.timestamp()
        async with self._services.sessions() as session, session.begin():
            await touch(session, caller.id, now)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="siyu-bot"'})


def serve(route: Route, gate: Gate, services: Services) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            if route.scope is None:
                return await route.handler(request)  # type: ignore[arg-type]
            caller = await gate.admit(request, route.scope)
            return await route.handler(Call(request, caller, services))  # type: ignore[arg-type]
        except Problem as problem:
            return problem_response(problem)
        except Exception:
            # The method and path only: never the headers (the key) or the body.
            log.exception("admin API %s %s failed", request.method, request.path)
            return problem_response(Problem(500, "Internal error", "the request failed; the server log has why"))

    return handle


def audit_entry(
    session: AsyncSession,
    call: Call,
    resource: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Record one write in the caller's transaction: who, what, when, before and after."""
    session.add(
        AuditEntry(
            key_id=call.caller.id if call.caller.via_key else None,
            key_name=call.caller.name,
            method=call.request.method,
            path=call.request.path[:512],
            resource=resource[:128],
            at=call.services.clock.now(),
            before=_plain(before),
            after=_plain(after),
        )
    )


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(dumps(value))
