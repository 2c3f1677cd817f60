"""审计: every write through the admin API and the console (who, what, when, before/after), newest first."""

from __future__ import annotations

import json

from aiohttp import web

from handlers.api import operations
from handlers.console.apicall import api_json, scope_of
from handlers.console.auth import Viewer, page
from handlers.console.core import CONSOLE


@page(scope_of(operations.audit))
async def audit(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    query = {"limit": "50", **({"cursor": request.query["cursor"]} if request.query.get("cursor") else {})}
    trail = await api_json(request, viewer, operations.audit, query)
    return request.app[CONSOLE].render(
        "audit.html", viewer=viewer, nav="audit", items=trail["items"], more=trail["next_cursor"],
        show=lambda v: "-" if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True)[:300],
    )  # fmt: skip
