"""员工: staff changes — every handover batch (离职继承 / 在职转接) by state, the customers still waiting, group
handovers, the commands' audit trail, and the latest 客户流失提醒 — the queries of ``siyu-bot staff
transfers|audit`` (:mod:`handlers.staff.queries`). Read-only: handovers are started on the command line,
with its dry run."""

from __future__ import annotations

from aiohttp import web

from handlers.console.auth import Viewer, page
from handlers.console.core import CONSOLE
from handlers.staff.queries import audit_trail, group_counts, latest_loss_alerts, pending_transfers, transfer_counts

SHOWN = 100


@page("read")
async def staff(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    async with console.services.sessions() as session:
        counts = await transfer_counts(session)
        pending = await pending_transfers(session, SHOWN)
        groups = await group_counts(session)
        trail = await audit_trail(session, SHOWN)
        alerts = await latest_loss_alerts(session, SHOWN)
    return console.render(
        "staff.html",
        viewer=viewer,
        nav="staff",
        counts=counts,
        pending=pending,
        groups=sorted(groups.items()),
        trail=trail,
        alerts=alerts,
    )
