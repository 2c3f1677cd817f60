"""客户: search, a profile (identities, channels, tags, groups, orders, points, check-ins, draws, drips,
timeline) and the writes the API makes: tags added/removed (synced to WeCom/OA through the outbox) and
drips started/stopped — each audited as ``console:<email>``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from handlers.api import customers as api
from handlers.console.apicall import api_json, call_for, scope_of
from handlers.console.auth import Viewer, page, see_other
from handlers.console.core import CONSOLE, PREFIX
from handlers.console.i18n import t
from handlers.growth.content import channels_of
from handlers.sop.content import sop_of

SEARCH_FIELDS = ("q", "channel", "tag", "cursor")
PAGE_SIZE = "50"
TIMELINE = "100"


@page(scope_of(api.search))
async def search(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    wanted = {k: request.query[k].strip() for k in SEARCH_FIELDS if request.query.get(k, "").strip()}
    found = await api_json(request, viewer, api.search, {**wanted, "limit": PAGE_SIZE})
    more = None
    if found["next_cursor"]:
        more = "?" + "&".join(f"{k}={quote(v)}" for k, v in {**wanted, "cursor": found["next_cursor"]}.items())
    return console.render(
        "customers.html", viewer=viewer, nav="customers", query=wanted, items=found["items"], more=more,
        channels=channels_of(console.services.content).channels,
    )  # fmt: skip


@page(scope_of(api.profile))
async def profile(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    body: dict[str, Any] = await api_json(request, viewer, api.profile, {})
    timeline = await api_json(request, viewer, api.timeline, {"limit": TIMELINE})
    content = console.services.content
    enrolled = {d["drip_id"] for d in body["drips"]}
    return console.render(
        "customer.html", viewer=viewer, nav="customers", c=body, timeline=timeline["items"],
        names={ch.code: ch.name for ch in channels_of(content).channels},
        known_tags=[ref for g in content.tag_groups for ref in g.refs()],
        drips=[d for d in sop_of(content).drips if d.enabled and d.id not in enrolled],
        done=request.query.get("done", ""),
    )  # fmt: skip


def _back(cid: int, what: str) -> web.Response:
    return see_other(f"{PREFIX}/customers/{cid}?done={quote(what)}")


@page(scope_of(api.add_tags))
async def add_tag(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    call, form = call_for(request, viewer), await request.post()
    cid, tags = call.int_param("id"), [str(form.get("tag", "")).strip()]
    result = await api.tag_customer(call, cid, api.tag_list(tags))
    return _back(cid, t("customer.tag_add") + " " + (", ".join(result["added"]) or "-"))


@page(scope_of(api.remove_tag))
async def remove_tag(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    call, form = call_for(request, viewer), await request.post()
    cid, tag = call.int_param("id"), str(form.get("tag", ""))
    await api.untag_customer(call, cid, tag)
    return _back(cid, t("customer.tag_remove", tag=tag))


@page(scope_of(api.start_drip))
async def start_drip(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    await api.start_drip(call_for(request, viewer))
    return _back(int(request.match_info["id"]), t("customer.drip_start") + " " + request.match_info["drip_id"])


@page(scope_of(api.stop_drip))
async def stop_drip(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    await api.stop_drip(call_for(request, viewer))
    return _back(int(request.match_info["id"]), t("customer.drip_stop") + " " + request.match_info["drip_id"])
