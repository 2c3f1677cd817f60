"""SOP: a 30-day calendar of what ``sop preview`` computes (with the budget's decisions), the drip status
of ``sop status`` and the group-post fires with the owners who have not confirmed their tasks."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiohttp import web

from handlers.api import sop as api
from handlers.console.apicall import api_json, scope_of
from handlers.console.auth import Viewer, page
from handlers.console.core import CONSOLE

CALENDAR_DAYS = "30"
CALENDAR_ROWS = "200"  # the earliest drip steps with their decisions; the total is counted


@page(scope_of(api.preview))
async def sop(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    plan = await api_json(request, viewer, api.preview, {"days": CALENDAR_DAYS, "limit": CALENDAR_ROWS})
    status = await api_json(request, viewer, api.status, {"latest": "10"})
    fires = await api_json(request, viewer, api.fires, {"limit": "20"})
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in plan["items"]:
        days[console.local(item["due"])[:10]].append(item)
    return console.render(
        "sop.html", viewer=viewer, nav="sop", days=sorted(days.items()), plan=plan, status=status,
        fires=fires["items"],
    )  # fmt: skip
