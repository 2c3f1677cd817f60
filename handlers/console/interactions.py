"""互动: check-in figures, lottery campaigns (status, winners as CSV, kill/resume, verify) and referral
figures — through the API's functions (kill/resume/verify audited as ``console:<email>``)."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import func, select

from handlers.api import interactions as api
from handlers.console.apicall import api_json, call_for, scope_of
from handlers.console.auth import Viewer, page, see_other
from handlers.console.core import CONSOLE, PREFIX
from handlers.console.i18n import t
from handlers.interactions.tables import Referral

WINNERS_PAGE = "200"
CSV_HEADER = ("draw_id", "seq", "customer_id", "prize_id", "drawn_at")


async def referral_figures(request: web.Request) -> dict[str, int]:
    """Referrals by state: held (waiting out the hold), released (rewarded), revoked, rejected."""
    async with request.app[CONSOLE].services.sessions() as session:
        rows = (await session.execute(select(Referral.state, func.count()).group_by(Referral.state))).all()
    return {str(state): int(n) for state, n in rows}


@page(scope_of(api.checkin_stats))
async def interactions(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    checkins = await api_json(request, viewer, api.checkin_stats, {"days": "30"})
    campaigns = await api_json(request, viewer, api.campaigns, {})
    return console.render(
        "interactions.html", viewer=viewer, nav="interactions", checkins=checkins, campaigns=campaigns["items"],
        referrals=await referral_figures(request), done=request.query.get("done", ""),
    )  # fmt: skip


@page(scope_of(api.campaign))
async def winners_csv(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """Every winner of the campaign, walked through the API's pages."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    query: dict[str, str] = {"limit": WINNERS_PAGE}
    while True:
        body: dict[str, Any] = await api_json(request, viewer, api.campaign, query)
        writer.writerows([w[k] for k in CSV_HEADER] for w in body["winners"]["items"])
        if not body["winners"]["next_cursor"]:
            break
        query["cursor"] = body["winners"]["next_cursor"]
    name = f"winners-{request.match_info['campaign_id']}.csv"
    return web.Response(
        body=out.getvalue().encode("utf-8-sig"),  # a BOM: Excel opens UTF-8 Chinese text correctly
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{quote(name)}"'},
    )


def _back(what: str) -> web.Response:
    return see_other(f"{PREFIX}/interactions?done={quote(what)}")


@page(scope_of(api.kill))
async def kill(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    form = await request.post()
    await api.switch_campaign(call_for(request, viewer), True, str(form.get("reason", "")))
    return _back(t("interactions.kill") + " " + request.match_info["campaign_id"])


@page(scope_of(api.resume))
async def resume(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    await api.switch_campaign(call_for(request, viewer), False, None)
    return _back(t("interactions.resume") + " " + request.match_info["campaign_id"])


@page(scope_of(api.verify))
async def verify(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    result = await api_json(request, viewer, api.verify)
    return request.app[CONSOLE].render("verify.html", viewer=viewer, nav="interactions", result=result)
