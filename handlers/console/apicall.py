"""The console reads and writes through the admin API's own functions (the same queries, the same audit).

A console page builds a :class:`~handlers.api.http.Call` for the signed-in user (``console:<email>``, the
scope of their role) and calls the API's handler, or the write function the handler wraps; a
:class:`~handlers.api.http.Problem` it raises becomes an error page. :func:`scope_of` is the scope the
API route of that handler needs, so the console can never allow what the API refuses.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any

from aiohttp import web
from yarl import URL

from handlers.api.http import Call
from handlers.api.routes import ROUTES
from handlers.console.auth import Viewer
from handlers.console.core import CONSOLE

ApiHandler = Callable[[Call], Awaitable[web.StreamResponse]]


@cache
def _scopes() -> dict[Any, str]:
    return {route.handler: route.scope for route in ROUTES if route.scope is not None}


def scope_of(handler: ApiHandler) -> str:
    """The scope of the API route served by ``handler`` (KeyError for a function no route serves)."""
    return _scopes()[handler]


def call_for(request: web.Request, viewer: Viewer, query: Mapping[str, str] | None = None) -> Call:
    """The signed-in user's call; ``query`` replaces the request's own query string (path parameters stay)."""
    if query is not None:
        request = request.clone(rel_url=URL(request.path).with_query(dict(query)))
    return Call(request, viewer.caller, request.app[CONSOLE].services)


async def api_json(
    request: web.Request, viewer: Viewer, handler: ApiHandler, query: Mapping[str, str] | None = None
) -> Any:
    """What the API route would answer, as JSON values (times as ISO strings)."""
    response = await handler(call_for(request, viewer, query))
    assert isinstance(response, web.Response) and response.text is not None
    return json.loads(response.text)
