"""``/api/v1/webhooks/…``: outbound webhook endpoints and their deliveries, through the same functions as
``siyu-bot webhooks …`` (:mod:`handlers.integrations.endpoints`), the SSRF guard included.

Every route needs the ``admin`` scope, reads too: an endpoint's URL may carry the receiver's credential and
the delivery log holds the receivers' answers. The signing secret is in the create response only.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.api.http import (
    Call,
    Problem,
    audit_entry,
    id_cursor,
    invalid,
    json_body,
    json_response,
    limit_of,
    not_found,
    page,
    resource_response,
)
from handlers.integrations.catalogue import parse_events
from handlers.integrations.endpoints import (
    EndpointError,
    add_endpoint,
    deliveries_page,
    delivery_counts,
    remove_endpoint,
    replay,
    update_endpoint,
)
from handlers.integrations.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint

E = WebhookEndpoint


def endpoint_body(row: WebhookEndpoint, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "enabled": row.enabled,
        "ordered": row.ordered,
        "created_at": row.created_at,
        "disabled_at": row.disabled_at,
        "disabled_reason": row.disabled_reason,
        "failing_since": row.failing_since,
        "deliveries": dict(sorted(counts.items())),
    }


def attempt_body(a: WebhookAttempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "at": a.at,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "response_excerpt": a.response_excerpt,
        "error": a.error,
    }


def delivery_body(row: WebhookDelivery, attempts: list[WebhookAttempt] | None = None) -> dict[str, Any]:
    body = {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "endpoint_id": row.endpoint_id,
        "event_type": row.event_type,
        "customer_id": row.customer_id,
        "state": row.state,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "next_attempt_at": row.next_attempt_at,
        "delivered_at": row.delivered_at,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "payload": json.loads(row.body),
    }
    if attempts is not None:
        body["log"] = [attempt_body(a) for a in attempts]
    return body


def _events_text(value: Any) -> str:
    """``events`` as a list of names/patterns (or one comma-separated string), checked as the CLI checks it."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        text = ",".join(value)
    else:
        raise invalid("events", "must be a non-empty list of event names, prefix.* patterns or *")
    try:
        parse_events(text)
    except ValueError as exc:
        raise invalid("events", str(exc)) from None
    return text


def _flag(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid(name, "must be true or false")
    return value


async def _object_body(call: Call, allowed: tuple[str, ...]) -> dict[str, Any]:
    body = await json_body(call.request)
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(unknown[0], f"unknown field (allowed: {', '.join(allowed)})")
    return body


async def create(call: Call) -> web.Response:
    body = await _object_body(call, ("url", "events", "ordered"))
    url = body.get("url")
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise invalid("url", "must be an http:// or https:// URL (at most 2048 characters)")
    events, ordered = _events_text(body.get("events")), bool(_flag(body, "ordered"))
    allow = call.services.settings.webhooks.allow_private_targets
    async with call.services.sessions() as session, session.begin():
        try:
            made = await add_endpoint(
                session, url, events, ordered=ordered, allow_private=allow, now=call.services.clock.now()
            )
        except EndpointError as exc:
            raise invalid("url", str(exc)) from None
        row = await session.get(E, made.id)
        assert row is not None
        after = endpoint_body(row, {})
        audit_entry(session, call, f"webhook_endpoint:{made.id}", None, after)
    return json_response({**after, "secret": made.secret}, status=201)


async def endpoints(call: Call) -> web.Response:
    limit, after = limit_of(call.request), id_cursor(call.request)
    query = select(E).order_by(E.id).limit(limit + 1)
    if after is not None:
        query = query.where(E.id > after)
    async with call.services.sessions() as session:
        rows = list((await session.scalars(query)).all())
        counts = await delivery_counts(session, [r.id for r in rows])
    items = [endpoint_body(r, counts[r.id]) for r in rows]
    return json_response(page(items, limit, lambda i: [i["id"]]))


async def _endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    row = await session.get(E, endpoint_id)
    if row is None:
        raise not_found(f"webhook endpoint {endpoint_id}")
    return row


async def _current(session: AsyncSession, row: WebhookEndpoint) -> dict[str, Any]:
    await session.flush()
    return endpoint_body(row, (await delivery_counts(session, [row.id]))[row.id])


async def get_endpoint(call: Call) -> web.Response:
    async with call.services.sessions() as session:
        body = await _current(session, await _endpoint(session, call.int_param("id")))
    return resource_response(call.request, body)


async def change(call: Call) -> web.Response:
    """Events, enabled (disable: deliveries wait; enable: they go at once) and the ordering switch."""
    endpoint_id = call.int_param("id")
    body = await _object_body(call, ("events", "enabled", "ordered"))
    if not body:
        raise invalid("body", "name at least one of events, enabled, ordered")
    events = _events_text(body["events"]) if "events" in body else None
    enabled, ordered = _flag(body, "enabled"), _flag(body, "ordered")
    async with call.services.sessions() as session, session.begin():
        row = await _endpoint(session, endpoint_id)
        before = await _current(session, row)
        await update_endpoint(session, endpoint_id, call.services.clock.now(), events=events, enabled=enabled,
                              ordered=ordered)  # fmt: skip
        after = await _current(session, row)
        audit_entry(session, call, f"webhook_endpoint:{endpoint_id}", before, after)
    if enabled:
        call.services.wake()  # waiting deliveries go now, not at the next poll
    return json_response(after)


async def remove(call: Call) -> web.Response:
    endpoint_id = call.int_param("id")
    async with call.services.sessions() as session, session.begin():
        before = await _current(session, await _endpoint(session, endpoint_id))
        gone = await remove_endpoint(session, endpoint_id)
        after = {"id": endpoint_id, "deliveries_removed": gone}
        audit_entry(session, call, f"webhook_endpoint:{endpoint_id}", before, after)
    return json_response(after)


async def deliveries(call: Call) -> web.Response:
    """An endpoint's deliveries, newest first, each with every attempt (status, latency, answer excerpt)."""
    endpoint_id, limit, before = call.int_param("id"), limit_of(call.request), id_cursor(call.request)
    async with call.services.sessions() as session:
        await _endpoint(session, endpoint_id)
        rows = await deliveries_page(session, endpoint_id, before, limit + 1)
    items = [delivery_body(row, attempts) for row, attempts in rows]
    return json_response(page(items, limit, lambda i: [i["id"]]))


async def replay_delivery(call: Call) -> web.Response:
    """Send a delivery again now, with the same ``webhook-id`` (receivers that have it drop the copy)."""
    delivery_id = call.int_param("id")
    async with call.services.sessions() as session, session.begin():
        row = await session.get(WebhookDelivery, delivery_id)
        if row is None:
            raise not_found(f"webhook delivery {delivery_id}")
        before = delivery_body(row)
        try:
            await replay(session, delivery_id, call.services.clock.now())
        except EndpointError as exc:
            raise Problem(409, "Being sent", str(exc)) from None
        after = delivery_body(row)
        audit_entry(session, call, f"webhook_delivery:{delivery_id}", before, after)
    call.services.wake()
    return json_response(after, status=202)
