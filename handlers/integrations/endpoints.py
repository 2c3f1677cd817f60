"""Managing endpoints and looking at deliveries: what ``siyu-bot webhooks …`` does (and tests call)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.logs import remember_secret
from handlers.integrations.catalogue import parse_events
from handlers.integrations.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from handlers.integrations.targets import check_url


class EndpointError(ValueError):
    """A request the operator must change (unknown id, a refused URL, unknown events)."""


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Created:
    id: int
    secret: str

    def __repr__(self) -> str:
        return f"Created(id={self.id}, secret='**********')"


async def add_endpoint(
    session: AsyncSession, url: str, events: str, *, ordered: bool, allow_private: bool, now: datetime
) -> Created:
    """Check the URL (SSRF guard, DNS included) and the event names, store the endpoint with a new secret."""
    try:
        await check_url(url, allow_private)
        subscribed = parse_events(events)
    except ValueError as exc:
        raise EndpointError(str(exc)) from None
    except OSError as exc:  # RefusedTarget
        raise EndpointError(str(exc)) from None
    secret = new_secret()
    remember_secret(secret)
    remember_secret(secret.removeprefix("whsec_"))
    row = WebhookEndpoint(url=url, events=subscribed, secret=secret, enabled=True, ordered=ordered, created_at=now)
    session.add(row)
    await session.flush()
    return Created(row.id, secret)


async def endpoint(session: AsyncSession, endpoint_id: int) -> WebhookEndpoint:
    row = await session.get(WebhookEndpoint, endpoint_id)
    if row is None:
        raise EndpointError(f"no webhook endpoint {endpoint_id}")
    return row


async def set_enabled(session: AsyncSession, endpoint_id: int, enabled: bool, now: datetime) -> None:
    """Disable (deliveries wait, pending) or enable (they go out at once; the failure clock starts over)."""
    row = await endpoint(session, endpoint_id)
    row.enabled = enabled
    if enabled:
        row.disabled_at, row.disabled_reason, row.failing_since = None, None, None
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == "pending")
            .values(next_attempt_at=now)
        )
    else:
        row.disabled_at, row.disabled_reason = now, "disabled by the operator"


async def remove_endpoint(session: AsyncSession, endpoint_id: int) -> int:
    """Delete the endpoint with its deliveries and their log; returns how many deliveries went with it."""
    await endpoint(session, endpoint_id)
    ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
    count = int(await session.scalar(select(func.count()).select_from(ids.subquery())) or 0)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    return count


async def list_endpoints(session: AsyncSession) -> list[tuple[WebhookEndpoint, dict[str, int]]]:
    rows = list((await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))).all())
    counts = (
        await session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.state, func.count()).group_by(
                WebhookDelivery.endpoint_id, WebhookDelivery.state
            )
        )
    ).all()
    by: dict[int, dict[str, int]] = {}
    for eid, state, n in counts:
        by.setdefault(eid, {})[state] = int(n)
    return [(row, by.get(row.id, {})) for row in rows]


async def recent_deliveries(
    session: AsyncSession, endpoint_id: int, limit: int
) -> list[tuple[WebhookDelivery, WebhookAttempt | None]]:
    """The newest deliveries of an endpoint, each with its last attempt."""
    await endpoint(session, endpoint_id)
    rows = list(
        (
            await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            )
        ).all()
    )
    out: list[tuple[WebhookDelivery, WebhookAttempt | None]] = []
    for row in rows:
        last = await session.scalar(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == row.id)
            .order_by(WebhookAttempt.attempt.desc(), WebhookAttempt.id.desc())
            .limit(1)
        )
        out.append((row, last))
    return out


async def replay(session: AsyncSession, delivery_id: int, now: datetime) -> WebhookDelivery:
    """Send a delivery again (same ``webhook-id``: a receiver that has it drops the copy), now."""
    row = await session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise EndpointError(f"no webhook delivery {delivery_id}")
    if row.state == "sending":
        raise EndpointError(f"delivery {delivery_id} is being sent right now")
    row.state, row.next_attempt_at, row.owner = "pending", now, None
    return row


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: int,
    now: datetime,
    *,
    events: str | None = None,
    enabled: bool | None = None,
    ordered: bool | None = None,
) -> WebhookEndpoint:
    """Change what an endpoint hears, whether it is on (as :func:`set_enabled`), and its ordering switch.
    The new ordering applies to deliveries queued from now on."""
    row = await endpoint(session, endpoint_id)
    if events is not None:
        try:
            row.events = parse_events(events)
        except ValueError as exc:
            raise EndpointError(str(exc)) from None
    if ordered is not None:
        row.ordered = ordered
    if enabled is not None and enabled != row.enabled:
        await set_enabled(session, endpoint_id, enabled, now)
    return row


async def deliveries_page(
    session: AsyncSession, endpoint_id: int, before_id: int | None, limit: int
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """Up to ``limit`` deliveries of an endpoint, newest first (ids below ``before_id``), each with its
    attempts in order: two queries, whatever the page size."""
    await endpoint(session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    rows = list((await session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))).all())
    attempts: dict[int, list[WebhookAttempt]] = {row.id: [] for row in rows}
    if rows:
        found = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt, WebhookAttempt.id)
        )
        for attempt in found:
            attempts[attempt.delivery_id].append(attempt)
    return [(row, attempts[row.id]) for row in rows]


async def delivery_counts(session: AsyncSession, endpoint_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries per state of each of ``endpoint_ids``."""
    if not endpoint_ids:
        return {}
    found = await session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.state, func.count())
        .where(WebhookDelivery.endpoint_id.in_(endpoint_ids))
        .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.state)
    )
    counts: dict[int, dict[str, int]] = {eid: {} for eid in endpoint_ids}
    for eid, state, n in found.all():
        counts[eid][state] = int(n)
    return counts
