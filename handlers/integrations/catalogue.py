"""The events an endpoint can subscribe to, and the JSON each becomes.

Every :class:`bot.events.DomainEvent` the features define (``handlers/*/events.py``) is deliverable; its
``name`` (``customer.created``) is the payload's ``type``. The payload is::

    {"type": "customer.created", "timestamp": "2026-11-23T10:00:00+00:00",
     "data": {...the event's fields..., "customer": {"id": 12, "external_userid": "wm…", "openid": null,
                                                      "unionid": null}}}

``data.customer`` (siyu-bot's customer id and the platform ids known for that customer) is added to every
event about one customer; times are ISO 8601 with their offset, tuples are lists.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Customer
from bot.events import DomainEvent

# The features whose events are delivered; a feature with events of its own adds its module here.
EVENT_MODULES = (
    "handlers.customers.events",
    "handlers.growth.events",
    "handlers.interactions.events",
    "handlers.orders.events",
    "handlers.sop.events",
    "handlers.staff.events",
)
ALL = "*"


def event_types() -> dict[str, type[DomainEvent]]:
    """Every deliverable event by name (the subclasses of DomainEvent the feature modules define)."""
    for module in EVENT_MODULES:
        importlib.import_module(module)
    found: dict[str, type[DomainEvent]] = {}
    todo = list(DomainEvent.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("handlers.") and cls.name != DomainEvent.name:
            found[cls.name] = cls
    return dict(sorted(found.items()))


def parse_events(text: str) -> list[str]:
    """``--events``: ``*``, or names and ``prefix.*`` patterns separated by commas; unknown names refused."""
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    if not wanted:
        raise ValueError("no events given (use * for all)")
    if ALL in wanted:
        return [ALL]
    known = event_types()
    for name in wanted:
        if not any(matches([name], k) for k in known):
            raise ValueError(f"unknown event {name!r} (known: {', '.join(known)}, or *)")
    return wanted


def matches(subscribed: list[str], name: str) -> bool:
    for pattern in subscribed:
        if pattern in (ALL, name) or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
            return True
    return False


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def customer_of(event: DomainEvent) -> int | None:
    """The customer an event is about (the ordering key), if exactly one."""
    for attr in ("customer_id", "kept"):
        value = getattr(event, attr, None)
        if isinstance(value, int):
            return value
    return None


async def event_data(event: DomainEvent, session: AsyncSession) -> dict[str, Any]:
    data = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    customer_id = customer_of(event)
    if customer_id is not None:
        row = await session.get(Customer, customer_id)
        if row is not None:
            data["customer"] = {
                "id": row.id,
                "external_userid": row.external_userid,
                "openid": row.openid,
                "unionid": row.unionid,
            }
    return data


def body_of(event: DomainEvent, at: datetime, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": event.name, "timestamp": at.isoformat(), "data": data}, ensure_ascii=False, separators=(",", ":")
    )
