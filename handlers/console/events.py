"""事件: the inbox (receipts, failed ones with a retry) and the outbound webhooks (endpoints enabled or
disabled, deliveries replayed) — the API's retry and the ``webhooks`` commands' functions, audited."""

from __future__ import annotations

from aiohttp import web

from handlers.api import operations
from handlers.api.http import Problem, audit_entry
from handlers.console.apicall import api_json, call_for, scope_of
from handlers.console.auth import Viewer, page, see_other
from handlers.console.core import CONSOLE, PREFIX
from handlers.integrations.endpoints import EndpointError, list_endpoints, recent_deliveries, replay, set_enabled

DELIVERIES_SHOWN = 10
WEBHOOKS_SCOPE = "admin"  # as the ``webhooks`` commands: who may change where events go


@page(scope_of(operations.events))
async def events(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    failed = request.query.get("status") == "failed"
    query = {"limit": "50", **({"status": "failed"} if failed else {})}
    if request.query.get("cursor"):
        query["cursor"] = request.query["cursor"]
    inbox = await api_json(request, viewer, operations.events, query)
    async with console.services.sessions() as session:
        endpoints = await list_endpoints(session)
        deliveries = {e.id: await recent_deliveries(session, e.id, DELIVERIES_SHOWN) for e, _ in endpoints}
    return console.render(
        "events.html", viewer=viewer, nav="events", inbox=inbox, failed=failed, endpoints=endpoints,
        deliveries=deliveries, done=request.query.get("done", ""),
    )  # fmt: skip


@page(scope_of(operations.retry_event))
async def retry(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    await operations.retry_event(call_for(request, viewer))
    return see_other(f"{PREFIX}/events?status=failed&done=retry")


async def _endpoint_switch(request: web.Request, viewer: Viewer, enabled: bool) -> web.StreamResponse:
    call = call_for(request, viewer)
    endpoint_id = call.int_param("id")
    async with call.services.sessions() as session, session.begin():
        try:
            await set_enabled(session, endpoint_id, enabled, call.services.clock.now())
        except EndpointError as exc:
            raise Problem(404, "Not found", str(exc)) from None
        audit_entry(session, call, f"webhook_endpoint:{endpoint_id}", {"enabled": not enabled}, {"enabled": enabled})
    return see_other(f"{PREFIX}/events?done={'enable' if enabled else 'disable'}")


@page(WEBHOOKS_SCOPE)
async def enable(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await _endpoint_switch(request, viewer, True)


@page(WEBHOOKS_SCOPE)
async def disable(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await _endpoint_switch(request, viewer, False)


@page(WEBHOOKS_SCOPE)
async def replay_delivery(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    call = call_for(request, viewer)
    delivery_id = call.int_param("id")
    async with call.services.sessions() as session, session.begin():
        try:
            row = await replay(session, delivery_id, call.services.clock.now())
        except EndpointError as exc:
            raise Problem(409, "Cannot replay", str(exc)) from None
        audit_entry(session, call, f"webhook_delivery:{delivery_id}", None, {"state": row.state, "replayed": True})
    return see_other(f"{PREFIX}/events?done=replay")
