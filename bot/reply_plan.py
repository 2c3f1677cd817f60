"""Reply planners: Official Account passive replies that depend only on content, answered at once.

A planner is a pure function ``(event, planning) -> Reply | None``: no database, no I/O. It reads
the event and :class:`Planning` (the operator content in force and the configured timezone). The
transport asks the planners right after the receipt is committed and answers with the first reply
at once; the handlers then run in the background and must not return that reply again (it would go
out a second time, late, as a customer-service message). Replies that depend on state (a check-in,
a draw) are not planned: they wait for their handler's transaction, inside the reply budget.

Everything a planner decides must be reproducible by the handler that records it (the Welcome row's
A/B variant): choices use :meth:`Planning.rng` (seeded by the event's dedup key, so a handler run,
its retry and WeChat's retry of the same message draw the same variant) and :meth:`Planning.local_time`
(the event's own ``CreateTime``, not the clock when the handler happens to run).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo
from typing import Any, Generic, TypeVar

from bot.content import Content
from bot.events import Event
from bot.replies import Reply


@dataclass(frozen=True, slots=True)
class Planning:
    """What a planner may read besides the event."""

    content: Content
    tz: tzinfo

    def local_time(self, event: Event) -> time:
        """The event's ``CreateTime`` on the configured wall clock (time-of-day variants, keyword hours)."""
        return local_time_of_event(event, self.tz)

    def rng(self, event: Event) -> random.Random:
        return rng_for(event)


def local_time_of_event(event: Event, tz: tzinfo) -> time:
    return datetime.fromtimestamp(event.create_time, UTC).astimezone(tz).time()


def rng_for(event: Event) -> random.Random:
    """A generator seeded by the event's dedup key (a str seed is hashed with SHA-512: the same in every
    process, unlike ``hash()``): the planner and the handler recording its choice agree."""
    return random.Random(event.dedup_key)


Planner = Callable[[Any, Planning], Reply | None]
F = TypeVar("F", bound=Callable[..., Any])


class EventRegistry(Generic[F]):
    """Functions registered per event type, in registration order (reply planners, door actions)."""

    def __init__(self) -> None:
        self._entries: list[tuple[tuple[type[Event], ...], F]] = []

    def register(self, *event_types: type[Event]) -> Callable[[F], F]:
        def add(fn: F) -> F:
            self._entries.append((event_types, fn))
            return fn

        return add

    def for_event(self, event: Event) -> list[F]:
        return [fn for types, fn in self._entries if isinstance(event, types)]

    def __bool__(self) -> bool:
        return bool(self._entries)


class ReplyPlanners(EventRegistry[Planner]):
    """One feature's planners, in registration order (``Router.plans``)."""


def first_reply(registries: Iterable[ReplyPlanners], event: Event, planning: Planning) -> Reply | None:
    """The first planner's reply (routers in order, planners in registration order)."""
    for registry in registries:
        for planner in registry.for_event(event):
            reply = planner(event, planning)
            if reply is not None:
                return reply
    return None
