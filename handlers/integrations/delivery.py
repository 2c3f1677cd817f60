"""The delivery worker: sends committed webhook deliveries, signed, at least once, retrying for days.

* **Claim** (one short statement): due ``pending`` rows, and ``sending`` rows whose owner is dead
  (bot/instances.py: a killed process's claims are taken over), of enabled endpoints, become
  ``sending`` with ``owner`` = this instance. PostgreSQL picks them with ``FOR UPDATE SKIP LOCKED``;
  SQLite with one conditional ``UPDATE … RETURNING`` (one writer at a time, bot/db/gate.py).
  On an ``ordered`` endpoint a customer's delivery waits while an earlier one of the same customer is
  not delivered yet.
* **Send** (no transaction open): Standard Webhooks headers — ``webhook-id`` ``msg_<delivery id>`` (the
  same on every retry), ``webhook-timestamp`` (the wall clock: receivers check it against theirs),
  ``webhook-signature`` ``v1,<base64 HMAC-SHA256>`` (the ``standardwebhooks`` library). Redirects are
  never followed; an attempt gives up after ``webhooks.delivery_timeout_seconds``. The worker has an HTTP
  client of its own with at most ``webhooks.delivery_concurrency`` connections, so a slow receiver never
  holds a platform call. Names resolve through the SSRF guard (handlers/integrations/targets.py).
* **Outcome** (batched, one short transaction for many attempts): an attempt log row each; 2xx →
  ``delivered``; 410 → the endpoint is disabled; anything else → ``pending`` again after
  :data:`RETRY_SCHEDULE` (± 10 % jitter). An endpoint that has failed everything for
  ``webhooks.disable_after_days`` is disabled and reported (log + the alert hook).

Scheduling uses the app's clock (simulated in tests and the demo), never ``time.time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import ColumnElement, and_, exists, false, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from standardwebhooks import Webhook

from bot.actions import run_action
from bot.background import Background
from bot.config import WebhooksConfig
from bot.context import Context
from bot.logs import remember_secret
from bot.parts import Part
from bot.services import Services
from bot.sim_clock import real_seconds
from handlers.integrations.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint, msg_id
from handlers.integrations.targets import GuardedResolver, RefusedTarget, check_literal

log = logging.getLogger(__name__)

WEBHOOK_WORKER = Part["DeliveryWorker"]("webhooks.worker")
# Seconds before attempt n+1 after n failed attempts; the last step repeats (5 s … 8 h: over a day in 11).
RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
JITTER = 0.1
EXCERPT_CHARS = 500
USER_AGENT = "siyu-bot-webhooks/1"
FLUSH_DELAY = 0.02
FLUSH = "flush"  # the key of the task writing the batched outcomes
D = WebhookDelivery
E = WebhookEndpoint


def retry_delay(attempts: int, rng: random.Random) -> float:
    """Seconds to wait after ``attempts`` failed attempts (exponential, capped at 8 h, ± 10 % jitter)."""
    base = RETRY_SCHEDULE[min(max(attempts, 1), len(RETRY_SCHEDULE)) - 1]
    return float(base) * (1 + rng.uniform(-JITTER, JITTER))


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    endpoint_id: int
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    secret: str

    def __repr__(self) -> str:
        return "Target(…)"  # neither the URL (it may carry a token) nor the secret


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    endpoint_id: int
    attempt: int
    at: datetime
    status: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


class DeliveryWorker:
    def __init__(self, services: Services, cfg: WebhooksConfig) -> None:
        self._s = services
        self._cfg = cfg
        self._clock = services.clock
        self._capacity = cfg.delivery_concurrency * 4  # claimed at once; sends are bounded by the semaphore
        self._limit = asyncio.Semaphore(cfg.delivery_concurrency)
        self._wake = asyncio.Event()
        self._slot = asyncio.Event()
        self._sends = Background("webhooks")  # deliveries being sent, and the outcome flusher
        self._outcomes: list[Outcome] = []
        self._flush_lock = asyncio.Lock()
        self._claim_lock = asyncio.Lock()  # one claim at a time per process (the poll, a drain, a wake)
        self._loops = Background("webhooks-poll")
        self._http: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"DeliveryWorker(in_flight={self.in_flight})"

    @property
    def owner(self) -> str:
        return self._s.instances.id

    def start(self, *, poll: bool = True) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._cfg.allow_private_targets),
            limit=self._cfg.delivery_concurrency,
            limit_per_host=self._cfg.delivery_concurrency,
        )
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._cfg.delivery_timeout_seconds),
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        if poll:
            self._loops.spawn(self._loop(), "poll")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let sends in flight finish (up to ``grace``), record their outcomes, close the client.
        A send cut off here stays ``sending`` under this instance, which is free once it is marked stopped."""
        await self._loops.stop()
        await self._sends.drain(grace)
        with contextlib.suppress(Exception):
            await self.flush()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def wake(self) -> None:
        """Look for due deliveries now (a commit queued some; the simulated clock jumped)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._sends) - (1 if FLUSH in self._sends else 0)

    async def _loop(self) -> None:
        while True:
            try:
                claimed = await self.run_due()
            except Exception:
                log.exception("webhook poll failed")
                claimed = 0
            if claimed and self.in_flight >= self._capacity:
                self._slot.clear()
                await self._slot.wait()
                continue
            if claimed:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), real_seconds(self._clock, self._cfg.poll_seconds))
            self._wake.clear()

    async def drain(self, rounds: int = 1000) -> None:
        """Send everything due now and record every outcome (tests, the benchmark)."""
        for _ in range(rounds):
            claimed = await self.run_due()
            await self._sends.wait_idle()
            await self.flush()
            if not claimed and not self.in_flight:
                return
        raise RuntimeError("webhook deliveries did not settle")

    # --- claiming --------------------------------------------------------------------------------

    async def run_due(self) -> int:
        """Claim what is due (as much as there is room for) and start sending it; returns how many."""
        async with self._claim_lock:
            room = self._capacity - self.in_flight
            if room <= 0 or self._http is None:
                return 0
            live = await self._s.instances.live_ids()
            now = self._clock.now()
            rows, targets = await run_action(self._s, lambda ctx: self._claim(ctx.session, now, live, room))
            for row in rows:
                task = self._sends.spawn(self._send(row, targets.get(row.endpoint_id)), f"delivery-{row.id}")
                task.add_done_callback(self._done)
            return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._slot.set()

    def _claimable(self, now: datetime, live: set[str]) -> ColumnElement[bool]:
        earlier = aliased(WebhookDelivery)
        waiting = exists().where(
            earlier.endpoint_id == D.endpoint_id,
            earlier.customer_id == D.customer_id,
            earlier.id < D.id,
            earlier.state.in_(("pending", "sending")),
        )
        return and_(
            or_(
                and_(D.state == "pending", D.next_attempt_at <= now),
                and_(D.state == "sending", or_(D.owner.is_(None), D.owner.not_in(sorted(live)))),
            ),
            D.endpoint_id.in_(select(E.id).where(E.enabled)),
            or_(D.ordered == false(), D.customer_id.is_(None), ~waiting),
        )

    async def _claim(
        self, session: AsyncSession, now: datetime, live: set[str], limit: int
    ) -> tuple[list[Claimed], dict[int, Target]]:
        due = select(D.id).where(self._claimable(now, live)).order_by(D.next_attempt_at, D.id).limit(limit)
        take = update(D).values(state="sending", owner=self.owner, attempts=D.attempts + 1)
        back = (D.id, D.endpoint_id, D.body, D.attempts)
        if session.get_bind().dialect.name == "postgresql":
            ids = list((await session.scalars(due.with_for_update(of=D, skip_locked=True))).all())
            if not ids:
                return [], {}
            found = (await session.execute(take.where(D.id.in_(ids)).returning(*back))).all()
        else:
            stmt = take.where(D.id.in_(due.scalar_subquery()), self._claimable(now, live)).returning(*back)
            found = (await session.execute(stmt)).all()
        rows = sorted((Claimed(*r) for r in found), key=lambda r: r.id)
        if not rows:
            return [], {}
        wanted = {r.endpoint_id for r in rows}
        targets = {
            eid: Target(url, secret)
            for eid, url, secret in (await session.execute(select(E.id, E.url, E.secret).where(E.id.in_(wanted)))).all()
        }
        for target in targets.values():
            remember_secret(target.secret)  # never in a log line, whatever logs it
            remember_secret(target.secret.removeprefix("whsec_"))
        return rows, targets

    # --- sending ---------------------------------------------------------------------------------

    async def _send(self, row: Claimed, target: Target | None) -> None:
        at = self._clock.now()
        started = time.perf_counter()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            if target is None:
                raise RefusedTarget("the endpoint was removed")
            async with self._limit:
                started = time.perf_counter()
                status, excerpt = await self._post(row, target)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = describe(exc, self._cfg.delivery_timeout_seconds)
        latency = int((time.perf_counter() - started) * 1000)
        self._outcomes.append(Outcome(row.id, row.endpoint_id, row.attempts, at, status, latency, excerpt, error))
        if FLUSH not in self._sends:
            self._sends.spawn(self._flush_soon(), "flush", key=FLUSH)

    async def _post(self, row: Claimed, target: Target) -> tuple[int, str]:
        assert self._http is not None
        check_literal(target.url, self._cfg.allow_private_targets)  # names are checked by the resolver
        webhook_id = msg_id(row.id)
        sent_at = datetime.now(UTC)  # the receiver compares it with its own clock: the wall clock, always
        signature = Webhook(target.secret).sign(webhook_id, sent_at, row.body)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
        }
        async with self._http.post(
            target.url, data=row.body.encode(), headers=headers, allow_redirects=False
        ) as response:
            raw = await response.content.read(EXCERPT_CHARS * 4)
            return response.status, raw.decode("utf-8", "replace")[:EXCERPT_CHARS]

    # --- outcomes --------------------------------------------------------------------------------

    async def _flush_soon(self) -> None:
        """Outcomes arriving within a few milliseconds share one transaction (SQLite has one writer)."""
        while True:
            await asyncio.sleep(FLUSH_DELAY)
            try:
                await self.flush()
            except Exception:
                log.exception("recording webhook outcomes failed; retrying")
                await asyncio.sleep(1.0)
            if not self._outcomes:
                return

    async def flush(self) -> None:
        """Write the outcomes gathered so far in one transaction (a failure keeps them for the next try)."""
        async with self._flush_lock:
            batch, self._outcomes = self._outcomes, []
            if not batch:
                return
            try:
                disabled = await run_action(self._s, lambda ctx: self._record(ctx, batch))
            except BaseException:
                self._outcomes[:0] = batch
                raise
        for endpoint_id, reason in disabled:
            await self._report_disabled(endpoint_id, reason)
        if any(o.delivered for o in batch):
            self.wake()  # an ordered endpoint's next delivery may be free now

    async def _record(self, ctx: Context, batch: Sequence[Outcome]) -> list[tuple[int, str]]:
        session, now = ctx.session, ctx.now()
        await session.execute(
            insert(WebhookAttempt),
            [
                {
                    "delivery_id": o.delivery_id, "attempt": o.attempt, "at": o.at, "status_code": o.status,
                    "latency_ms": o.latency_ms, "response_excerpt": o.excerpt, "error": o.error,
                }
                for o in batch
            ],
        )  # fmt: skip
        mine = and_(D.state == "sending", D.owner == self.owner)
        by_status: dict[int, list[int]] = {}
        for o in batch:
            if o.delivered and o.status is not None:
                by_status.setdefault(o.status, []).append(o.delivery_id)
        for status, ids in by_status.items():
            await session.execute(
                update(D)
                .where(D.id.in_(ids), mine)
                .values(state="delivered", delivered_at=now, owner=None, last_status=status, last_error=None)
            )
        for o in batch:
            if not o.delivered:
                retry_at = now + timedelta(seconds=retry_delay(o.attempt, ctx.rng))
                await session.execute(
                    update(D)
                    .where(D.id == o.delivery_id, mine)
                    .values(state="pending", next_attempt_at=retry_at, owner=None, last_status=o.status,
                            last_error=o.error or f"HTTP {o.status}")
                )  # fmt: skip
        ok = {o.endpoint_id for o in batch if o.delivered}
        failing = {o.endpoint_id for o in batch if not o.delivered} - ok
        gone = {o.endpoint_id for o in batch if o.gone}
        if ok:
            await session.execute(
                update(E).where(E.id.in_(ok), E.failing_since.is_not(None)).values(failing_since=None)
            )
        if failing:
            await session.execute(
                update(E).where(E.id.in_(failing), E.failing_since.is_(None)).values(failing_since=now)
            )
        disabled: list[tuple[int, str]] = []
        if gone:
            disabled += await _disable(session, gone, now, "the endpoint answered 410 Gone")
        days = self._cfg.disable_after_days
        stale = now - timedelta(days=days)
        if failing - gone:
            old = (
                await session.scalars(select(E.id).where(E.id.in_(failing - gone), E.enabled, E.failing_since <= stale))
            ).all()
            if old:
                disabled += await _disable(session, set(old), now, f"every delivery failed for {days:g} days")
        return disabled

    async def _report_disabled(self, endpoint_id: int, reason: str) -> None:
        summary = f"webhook endpoint {endpoint_id} disabled: {reason}; `siyu-bot webhooks enable {endpoint_id}`"
        if self._s.running("alerts"):
            await self._s.alerts.report("webhook.endpoint_disabled", summary, endpoint_id=endpoint_id, reason=reason)
        else:
            log.error(summary)


async def _disable(session: AsyncSession, ids: set[int], now: datetime, reason: str) -> list[tuple[int, str]]:
    done = (
        await session.scalars(
            update(E)
            .where(E.id.in_(sorted(ids)), E.enabled)
            .values(enabled=False, disabled_at=now, disabled_reason=reason)
            .returning(E.id)
        )
    ).all()
    return [(eid, reason) for eid in done]


def describe(exc: BaseException, timeout: float) -> str:
    """An attempt's error for the log: what went wrong, never the URL (it may carry a token)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, RefusedTarget):
            return f"refused: {cause}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: {exc.strerror or 'connection failed'}"
    return type(exc).__name__
