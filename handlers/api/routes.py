"""Every route of the admin API, declared once: aiohttp serves them, :mod:`handlers.api.openapi` documents them."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from bot.services import Services
from handlers.api import content, customers, imports, interactions, operations, sop, webhooks
from handlers.api.http import PREFIX, Gate, Route, serve
from handlers.api.openapi import build_document

PAGE = {"limit": "page size, 1-200 (default 50)", "cursor": "next_cursor of the previous page"}
_CID = r"{id:\d+}"
_CAMPAIGN = "/lottery/campaigns/{campaign_id}"
_ENDPOINT = r"/webhooks/endpoints/{id:\d+}"


async def openapi_document(_: web.Request) -> web.Response:
    return web.json_response(document())


ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", None, openapi_document, "This OpenAPI 3.1 document (no key needed)", {200: None}),
    Route(
        "GET",
        "/customers",
        "read",
        customers.search,
        "Search customers",
        {200: "CustomerPage"},
        query={
            "q": "part of the name or of an id (case-insensitive)",
            "external_userid": "exact WeCom external_userid",
            "openid": "exact Official Account openid",
            "unionid": "exact unionid",
            "tag": "has this tag (group/name)",
            "channel": "arrived through this channel code at least once",
            "created_after": "created at or after (ISO-8601 with offset)",
            "created_before": "created before",
            **PAGE,
        },
        paginated=True,
    ),
    Route(
        "GET",
        f"/customers/{_CID}",
        "read",
        customers.profile,
        "One customer's profile",
        {200: "CustomerProfile", 304: None, 404: "Problem"},
        etag=True,
    ),
    Route(
        "GET",
        f"/customers/{_CID}/timeline",
        "read",
        customers.timeline,
        "Everything that happened, oldest first",
        {200: "TimelinePage", 404: "Problem"},
        query=PAGE,
        paginated=True,
    ),
    Route(
        "POST",
        f"/customers/{_CID}/tags",
        "write",
        customers.add_tags,
        "Tag a customer (here and on the platforms)",
        {200: "TagsResult", 404: "Problem"},
        body="TagsRequest",
    ),
    Route(
        "DELETE",
        f"/customers/{_CID}/tags/{{tag:.+}}",
        "write",
        customers.remove_tag,
        "Take a tag off (group/name; the slash as is or as %2F)",
        {200: "TagsResult", 404: "Problem"},
    ),
    Route(
        "POST",
        f"/customers/{_CID}/drips/{{drip_id}}",
        "write",
        customers.start_drip,
        "Enrol in a drip now",
        {201: "Enrolment", 404: "Problem", 409: "Problem"},
    ),
    Route(
        "DELETE",
        f"/customers/{_CID}/drips/{{drip_id}}",
        "write",
        customers.stop_drip,
        "Stop an active drip",
        {200: "Enrolment", 404: "Problem", 409: "Problem"},
    ),
    Route("GET", "/channels", "read", operations.channels, "The channels of content/", {200: "ChannelPage"}),
    Route(
        "GET",
        "/channels/{code}/stats",
        "read",
        operations.channel_figures,
        "A channel's figures, as `siyu-bot stats channels` (code `unattributed` for arrivals without one)",
        {200: "ChannelStats", 304: None, 404: "Problem"},
        query={"since": "first local day YYYY-MM-DD", "until": "the day after the last"},
        etag=True,
    ),
    Route(
        "GET",
        "/events",
        "read",
        operations.events,
        "Received events (receipts), newest first",
        {200: "EventPage"},
        query={"status": "pending | done | failed", "kind": "event kind", **PAGE},
        paginated=True,
    ),
    Route(
        "POST",
        r"/events/{id:\d+}/retry",
        "admin",
        operations.retry_event,
        "Put a failed event back to pending: the sweeper runs it again",
        {202: "Event", 404: "Problem", 409: "Problem"},
    ),
    Route(
        "POST",
        "/orders",
        "write",
        operations.post_order,
        "Record an order (the order webhook's payload)",
        {200: "OrderAccepted", 202: "OrderAccepted", 503: "Problem"},
        body="Order",
    ),
    Route(
        "GET",
        "/health",
        "read",
        operations.health,
        "Database, platform tokens, outbox backlog, last errors",
        {200: "Health", 503: "Health"},
    ),
    Route(
        "GET",
        "/sop/enrolments",
        "read",
        sop.enrolments,
        "Drip enrolments with their steps, by id",
        {200: "SopEnrolmentPage"},
        query={
            "customer_id": "this customer's",
            "drip_id": "this drip's",
            "state": "active | stopped | completed",
            **PAGE,
        },
        paginated=True,
    ),
    Route(
        "GET",
        "/sop/fires",
        "read",
        sop.fires,
        "Group-post fires, newest first, with their targets and the owners who have not confirmed",
        {200: "GroupFirePage"},
        query={"state": "the fire's or one of its targets' state", "post_id": "this group post's", **PAGE},
        paginated=True,
    ),
    Route(
        "GET",
        "/sop/preview",
        "read",
        sop.preview,
        "What would go to whom in the next days, with the budget's decisions (as `siyu-bot sop preview`)",
        {200: "SopPreview"},
        query={"days": "1-31 (default 7)", "limit": "at most this many drip steps, 1-5000 (default 1000)"},
    ),
    Route(
        "GET",
        "/sop/status",
        "read",
        sop.status,
        "Drips, steps, fires, failed SOP calls and the contact ledger, with reasons (as `siyu-bot sop status`)",
        {200: "SopStatus"},
        query={"latest": "how many recent rows per section, 0-100 (default 10)"},
    ),
    Route(
        "GET",
        "/checkins/stats",
        "read",
        interactions.checkin_stats,
        "Check-ins per local day and customers by their best streak",
        {200: "CheckinStats"},
        query={"days": "the last N local days, 1-366 (default 30)"},
    ),
    Route(
        "GET",
        "/lottery/campaigns",
        "read",
        interactions.campaigns,
        "Lottery campaigns as `siyu-bot lottery status` shows them",
        {200: "CampaignPage"},
    ),
    Route(
        "GET",
        _CAMPAIGN,
        "read",
        interactions.campaign,
        "One campaign, with its winners paginated",
        {200: "CampaignDetail", 304: None, 404: "Problem"},
        query=PAGE,
        etag=True,
    ),
    Route(
        "POST",
        _CAMPAIGN + "/kill",
        "admin",
        interactions.kill,
        "Stop a campaign's draws at once (the kill switch)",
        {200: "Campaign", 404: "Problem", 409: "Problem"},
        body="KillRequest",
    ),
    Route(
        "POST",
        _CAMPAIGN + "/resume",
        "admin",
        interactions.resume,
        "Lift the kill switch",
        {200: "Campaign", 404: "Problem", 409: "Problem"},
    ),
    Route(
        "POST",
        _CAMPAIGN + "/verify",
        "admin",
        interactions.verify,
        "After the end: reveal the seed and recompute every draw (as `siyu-bot lottery verify`)",
        {200: "Verification", 404: "Problem", 409: "Problem"},
    ),
    Route(
        "POST",
        "/webhooks/endpoints",
        "admin",
        webhooks.create,
        "Add an outbound webhook endpoint (SSRF-checked); the response holds its signing secret, shown this once",
        {201: "WebhookEndpointCreated"},
        body="WebhookEndpointRequest",
    ),
    Route(
        "GET",
        "/webhooks/endpoints",
        "admin",
        webhooks.endpoints,
        "Outbound webhook endpoints with their deliveries per state (admin: a URL may carry a credential)",
        {200: "WebhookEndpointPage"},
        query=PAGE,
        paginated=True,
    ),
    Route(
        "GET",
        _ENDPOINT,
        "admin",
        webhooks.get_endpoint,
        "One webhook endpoint",
        {200: "WebhookEndpoint", 304: None, 404: "Problem"},
        etag=True,
    ),
    Route(
        "PATCH",
        _ENDPOINT,
        "admin",
        webhooks.change,
        "Change its events, enable or disable it (deliveries wait while disabled), switch per-customer order",
        {200: "WebhookEndpoint", 404: "Problem"},
        body="WebhookEndpointChange",
    ),
    Route(
        "DELETE",
        _ENDPOINT,
        "admin",
        webhooks.remove,
        "Delete an endpoint with its deliveries and their log",
        {200: "WebhookEndpointRemoved", 404: "Problem"},
    ),
    Route(
        "GET",
        _ENDPOINT + "/deliveries",
        "admin",
        webhooks.deliveries,
        "An endpoint's deliveries, newest first, each with every attempt",
        {200: "WebhookDeliveryPage", 404: "Problem"},
        query=PAGE,
        paginated=True,
    ),
    Route(
        "POST",
        r"/webhooks/deliveries/{id:\d+}/replay",
        "admin",
        webhooks.replay_delivery,
        "Send a delivery again now, with the same webhook-id",
        {202: "WebhookDelivery", 404: "Problem", 409: "Problem"},
    ),
    Route(
        "POST",
        "/import",
        "admin",
        imports.start_import,
        "Start `siyu-bot import` in the background (one at a time); resumes an interrupted one",
        {202: "Import", 409: "Problem"},
    ),
    Route(
        "GET",
        "/import",
        "read",
        imports.import_status,
        "The latest import's state, progress and summary",
        {200: "Import", 404: "Problem"},
    ),
    Route(
        "GET",
        "/audit",
        "admin",
        operations.audit,
        "Every write through this API, newest first",
        {200: "AuditPage"},
        query=PAGE,
        paginated=True,
    ),
)


ROUTES = (*ROUTES, *content.ROUTES)


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document of :data:`ROUTES`."""
    return build_document(ROUTES)


def add_api_routes(app: web.Application, services: Services) -> None:
    gate = Gate(services)
    for route in ROUTES:
        app.router.add_route(route.method, PREFIX + route.path, serve(route, gate, services))
