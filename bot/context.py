"""What a handler gets besides its event: the open transaction, clock, rng, settings, services.

Handlers never see HTTP, XML or wechatpy. Platform calls are requested with
:meth:`Context.call_platform`, which writes an outbox row in the handler's own transaction, so
the call happens if and only if the business change commits.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.content_runtime import empty_content
from bot.db.models import OutboxCall
from bot.events import DomainEvent
from bot.metrics import Metrics
from bot.parts import Parts

# A domain-event handler: ``async def on_x(event, ctx)`` (the same shape as a callback handler).
Reaction = Callable[[Any, "Context"], Awaitable[object]]


class Runtime(Protocol):
    """What code inside a transaction may reach of the running app. :class:`bot.services.Services` is the
    one implementation; a Context without a running app has ``services=None``."""

    settings: Settings
    clock: Clock
    rng: random.Random
    content: Content
    metrics: Metrics
    parts: Parts

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...
    def running(self, name: str) -> bool: ...
    def notify_outbox(self, calls: list[tuple[int, int]]) -> None: ...
    def reactions(self, event: DomainEvent) -> Sequence[Reaction]: ...
    def listens_to(self, event_type: type[DomainEvent]) -> bool: ...


# Priorities: lower runs first. Welcome sends jump the queue (20-second welcome_code).
PRIORITY_WELCOME = 0
PRIORITY_REPLY = 10
PRIORITY_DEFAULT = 100
PRIORITY_BULK = 500


@dataclass
class Context:
    session: AsyncSession
    settings: Settings
    clock: Clock
    rng: random.Random
    receipt_id: int | None
    services: Runtime | None = None
    # Prefix of non-global outbox keys when there is no receipt (an H5 action, a periodic job).
    scope: str | None = None
    _calls: list[OutboxCall] = field(default_factory=list)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def content(self) -> Content:
        """The operator content in force (swapped atomically on reload, never half-applied)."""
        return self.services.content if self.services is not None else empty_content(".")

    def call_platform(
        self,
        platform: str,
        api: str,
        payload: dict[str, Any],
        *,
        key: str,
        priority: int = PRIORITY_DEFAULT,
        deadline: datetime | None = None,
        not_before: datetime | None = None,
        method: str = "POST",
        params: dict[str, Any] | None = None,
        then: str | None = None,
    ) -> OutboxCall:
        """Queue one platform call. ``key`` makes it idempotent within this receipt (or globally
        when the handler passes a globally unique key such as ``welcome:<welcome_code>``).
        ``then`` names result handlers (``Router.on_result``) that receive the platform's answer."""
        now = self.clock.now()
        payload = dict(payload)
        if method != "POST":
            payload["_method"] = method
        if params:
            payload["_params"] = params
        if then:
            payload["_then"] = then
        scope = f"r{self.receipt_id}" if self.receipt_id is not None else (self.scope or "adhoc")
        call = OutboxCall(
            idempotency_key=outbox_key(key, scope),
            receipt_id=self.receipt_id,
            platform=platform,
            api=api,
            payload=payload,
            priority=priority,
            state="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=not_before or now,
            deadline_at=deadline,
        )
        self.session.add(call)
        self._calls.append(call)
        return call

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once this transaction has committed (never after a rollback): e.g. wake a worker
        for work the transaction made due now. The same function is run once however often it is asked."""
        if fn not in self._after_commit:
            self._after_commit.append(fn)

    @property
    def after_commit_hooks(self) -> tuple[Callable[[], None], ...]:
        return tuple(self._after_commit)

    def committed(self) -> None:
        """Called by whoever committed the transaction (dispatcher, ``run_action``)."""
        for fn in self._after_commit:
            fn()

    def heard(self, event_type: type[DomainEvent]) -> bool:
        """Whether emitting ``event_type`` would reach anyone: skip the work of building one nobody hears."""
        return self.services is not None and self.services.listens_to(event_type)

    async def emit(self, event: DomainEvent) -> None:
        """Tell the other features what happened, inside this transaction: every handler registered for
        ``event``'s type (``@router.on(CustomerCreated)``) runs now, so their writes commit or roll back with
        the change that caused them. Without a running app (a bare script's Context) nobody listens."""
        if self.services is None:
            return
        for handler in self.services.reactions(event):
            await handler(event, self)

    async def flush_outbox(self) -> list[tuple[int, int]]:
        """Flush queued calls (assigning ids); ``(id, priority)`` pairs to poke the outbox after commit."""
        if not self._calls:
            return []
        await self.session.flush()
        return [(c.id, c.priority) for c in self._calls]


# Keys with these prefixes are unique across receipts (a welcome_code can be used only once).
_GLOBAL_SCOPES = {"welcome", "global"}


def outbox_key(key: str, scope: str) -> str:
    """The stored ``idempotency_key``: global keys as given, others prefixed by their scope (``r<receipt>``)."""
    return key if ":" in key and key.split(":", 1)[0] in _GLOBAL_SCOPES else f"{scope}:{key}"
