"""What a handler gets besides its event: the open transaction, clock, rng, settings, services.

Handlers never see HTTP, XML or wechatpy. Platform calls are requested with
:meth:`Context.call_platform`, which writes an outbox row in the handler's own transaction, so
the call happens if and only if the business change commits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.content_runtime import empty_content
from bot.db.models import OutboxCall

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
    services: Any = None
    # Prefix of non-global outbox keys when there is no receipt (an H5 action, a periodic job).
    scope: str | None = None
    _calls: list[OutboxCall] = field(default_factory=list)
    # A drip step this transaction scheduled is due already: whoever commits it wakes the drip worker.
    drip_due_now: bool = False

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

    def drip_step_due(self, due_at: datetime) -> None:
        """A drip step written in this transaction is due at ``due_at``. Due now (a ``0m`` step) means the
        runner of the transaction should wake the drip worker after the commit, not leave it to the poll."""
        if due_at <= self.clock.now():
            self.drip_due_now = True

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
