"""SOP: a 30-day calendar of what ``sop preview`` computes (with the budget's decisions), the drip status
of ``sop status`` and the group-post fires with the owners who have not confirmed their tasks.

Each step's budget decision takes a few queries, so the calendar details the earliest
:data:`CALENDAR_ROWS` drip steps (and every group post) and counts every pending step per day in one query.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import and_, case, func, select

from handlers.api import sop as api
from handlers.console.apicall import api_json, scope_of
from handlers.console.auth import Viewer, page
from handlers.console.core import CONSOLE, Console
from handlers.sop.tables import DripEnrolment, DripStepRun

CALENDAR_DAYS = 30
CALENDAR_ROWS = "100"


async def steps_per_day(console: Console) -> list[tuple[str, int]]:
    """Pending steps of active enrolments due on each local day of the next :data:`CALENDAR_DAYS` days."""
    tz = console.services.settings.tz
    today = console.now().astimezone(tz).date()
    bounds = [datetime.combine(today + timedelta(days=n), time(0), tz) for n in range(CALENDAR_DAYS + 1)]
    due = DripStepRun.due_at
    days = [func.sum(case((and_(due >= a, due < b), 1), else_=0)) for a, b in itertools.pairwise(bounds)]
    query = (
        select(*days)
        .join(DripEnrolment, DripEnrolment.id == DripStepRun.enrolment_id)
        .where(DripStepRun.state == "pending", DripEnrolment.state == "active", due >= bounds[0], due < bounds[-1])
    )
    async with console.services.sessions() as session:
        counts = (await session.execute(query)).one()
    return [(a.strftime("%Y-%m-%d"), int(n or 0)) for a, n in zip(bounds, counts, strict=False)]


@page(scope_of(api.preview))
async def sop(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    plan = await api_json(request, viewer, api.preview, {"days": str(CALENDAR_DAYS), "limit": CALENDAR_ROWS})
    status = await api_json(request, viewer, api.status, {"latest": "10"})
    fires = await api_json(request, viewer, api.fires, {"limit": "20"})
    items: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in plan["items"]:
        items[console.local(item["due"])[:10]].append(item)
    days = [(day, steps, items.get(day, [])) for day, steps in await steps_per_day(console)]
    return console.render(
        "sop.html", viewer=viewer, nav="sop", days=days, plan=plan, status=status, fires=fires["items"],
    )  # fmt: skip
