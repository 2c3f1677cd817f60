"""Door actions: platform calls that depend only on content, queued in the receipt's own transaction.

A reply that depends only on content must not wait for database writes it does not need. Reply planners
(bot/reply_plan.py) answer such a reply in the HTTP response; a door action does the same for a platform
call: a pure function ``(event, door) -> [DoorCall, …]`` — no database, no I/O — that runs when the
receipt is stored. The inbox writer (bot/inbox.py) inserts its calls into the outbox in the SAME
transaction as the receipt (``ON CONFLICT (idempotency_key) DO NOTHING``, keys scoped exactly as
:meth:`bot.context.Context.call_platform` scopes them) and hands the new outbox ids to the outbox worker
right after the commit. The handlers run later, as before, and must not queue the same call again: with a
global key (``welcome:<code>``) the handler finds the call by its key and records it.

Exactly once follows from the receipt: a retried callback is a duplicate receipt, so its door actions do
not run again; a crash after the commit leaves a durable outbox row that the owner/instance recovery sends;
a crash before the commit means no 200, and WeChat retries. A door action that raises costs its calls, not
the receipt (the handlers still run and do what they did before door actions existed).

Everything a door action decides must be reproducible by the handler that records it: choices use
:meth:`Door.rng` (seeded by the event's dedup key) and :meth:`Door.local_time` (the event's ``CreateTime``);
what the handler cannot recompute goes in :attr:`DoorCall.note`, stored with the call and never sent.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo
from typing import Any

from bot.content import Content
from bot.context import PRIORITY_DEFAULT
from bot.events import Event
from bot.parts import Parts
from bot.reply_plan import EventRegistry, local_time_of_event, rng_for

log = logging.getLogger(__name__)

NOTE = "_note"  # payload key of DoorCall.note: what the handler records, stripped before sending


@dataclass(frozen=True, slots=True)
class DoorCall:
    """One outbox call decided at the door (the arguments of ``Context.call_platform``, POST only)."""

    platform: str
    api: str
    body: dict[str, Any]
    key: str
    priority: int = PRIORITY_DEFAULT
    deadline: datetime | None = None
    note: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The outbox row's ``payload``: the body, plus the note under :data:`NOTE` when there is one."""
        return {**self.body, NOTE: dict(self.note)} if self.note else dict(self.body)


@dataclass(frozen=True, slots=True)
class Door:
    """What a door action may read besides the event: content, timezone, the features' in-memory parts (e.g.
    the growth feature's snapshot of uploaded media ids), the time of storing."""

    content: Content
    tz: tzinfo
    parts: Parts
    now: datetime

    def local_time(self, event: Event) -> time:
        return local_time_of_event(event, self.tz)

    def rng(self, event: Event) -> random.Random:
        return rng_for(event)


DoorAction = Callable[[Any, Door], Iterable[DoorCall]]


class DoorActions(EventRegistry[DoorAction]):
    """One feature's door actions, in registration order (``Router.door``)."""


def door_calls(registries: Iterable[DoorActions], event: Event, door: Door) -> list[DoorCall]:
    """Every door action's calls for ``event``; an action that raises is logged and contributes none."""
    calls: list[DoorCall] = []
    for registry in registries:
        for action in registry.for_event(event):
            try:
                calls.extend(action(event, door))
            except Exception:
                log.exception("door action failed", extra={"event_kind": event.kind})
    return calls
