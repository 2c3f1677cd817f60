"""Make a receipt that ends ``failed`` impossible to miss: an ERROR log line, a Prometheus counter and,
when ``alerts.url`` is set, a small JSON POST to the operator's alert hook.

A receipt is only ever ``failed`` after its delivery was answered 2xx (WeChat and the shop will not send
it again), so the failure is the operator's to act on: ``siyu-bot events --status failed`` lists them,
``/metrics`` counts them (``siyu_receipts_failed_total{kind}``, and the ``siyu_inbox_failed{kind}`` gauge
read from the database), and the hook gets::

    {"type": "receipt.failed", "receipt_id": 42, "kind": "order_paid",
     "error": "ValueError: …", "at": "2026-11-23T10:00:00+00:00"}

The POST is best effort: sent in the background with a short timeout (``alerts.timeout_seconds``), never
awaited by the caller, never retried, at most :data:`MAX_IN_FLIGHT` at once (more are dropped with a
warning; the log line and the counter always happen). The error text is scrubbed of every configured
secret before it goes anywhere, and the URL (which may carry a robot key) is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp

from bot.background import Background
from bot.clock import Clock
from bot.logs import RedactSecrets
from bot.metrics import Metrics

log = logging.getLogger(__name__)

FAILED_TOTAL = "siyu_receipts_failed_total"
MAX_IN_FLIGHT = 32
MAX_ERROR_CHARS = 500

ReceiptFailed = Callable[[int, str, str], Awaitable[None]]
"""``(receipt_id, kind, error)`` — what the dispatcher and the sweeper call when a receipt ends failed."""


async def report_receipt_failed(services: object, receipt_id: int, kind: str, error: str | None) -> None:
    """What the dispatcher calls where it marks a receipt failed: a no-op when the app has no alerts
    (``services`` is None in some unit rigs), so the call site stays one line."""
    alerts = getattr(services, "alerts", None)
    if isinstance(alerts, FailureAlerts):
        await alerts.receipt_failed(receipt_id, kind, error or "")


class FailureAlerts:
    def __init__(
        self, url: str, metrics: Metrics, clock: Clock, secrets: Iterable[str] = (), timeout: float = 3.0
    ) -> None:
        self._url = url
        self._metrics = metrics
        self._clock = clock
        self._scrub = RedactSecrets(secrets).scrub
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None
        self._in_flight = Background("alerts")

    def __repr__(self) -> str:
        return f"FailureAlerts(hook={'on' if self._url else 'off'})"

    async def receipt_failed(self, receipt_id: int, kind: str, error: str) -> None:
        """Record that receipt ``receipt_id`` ended failed; returns at once (the POST runs in the background)."""
        text = self._scrub(error)[:MAX_ERROR_CHARS]
        self._metrics.inc(FAILED_TOTAL, kind=kind)
        log.error(
            "receipt %s (%s) failed after it was accepted: %s",
            receipt_id,
            kind,
            text,
            extra={"receipt_id": receipt_id, "event_kind": kind},
        )
        if not self._url:
            return
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            log.warning("alert hook busy: alert for receipt %s dropped", receipt_id)
            return
        body = {
            "type": "receipt.failed",
            "receipt_id": receipt_id,
            "kind": kind,
            "error": text,
            "at": self._clock.now().isoformat(),
        }
        self._in_flight.spawn(self._post(body), f"receipt-{receipt_id}")

    async def report(self, kind: str, summary: str, **fields: str | int | None) -> None:
        """Anything else an operator must act on (a feature's, e.g. ``webhook.endpoint_disabled``): an ERROR
        line and, with the hook set, ``{"type": kind, **fields, "at": …}`` — the same best-effort POST."""
        text = self._scrub(summary)[:MAX_ERROR_CHARS]
        log.error("%s: %s", kind, text, extra={"alert": kind})
        if not self._url:
            return
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            log.warning("alert hook busy: %s alert dropped", kind)
            return
        body: dict[str, Any] = {"type": kind, **fields, "summary": text, "at": self._clock.now().isoformat()}
        self._in_flight.spawn(self._post(body), kind)

    async def _post(self, body: dict[str, Any]) -> None:
        try:
            if self._http is None:
                self._http = aiohttp.ClientSession(timeout=self._timeout)
            async with self._http.post(self._url, json=body, allow_redirects=False) as response:
                if response.status >= 300:
                    log.warning("alert hook answered %s for %s", response.status, _about(body))
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the exception text can name the URL, and the URL can hold a key: its type is enough
            log.warning("alert hook unreachable (%s) for %s", type(exc).__name__, _about(body))

    async def close(self, grace: float = 5.0) -> None:
        """Let alerts still in flight finish (up to ``grace`` seconds), then close the HTTP client."""
        await self._in_flight.drain(grace)
        if self._http is not None:
            await self._http.close()
            self._http = None


def _about(body: dict[str, Any]) -> str:
    return f"receipt {body['receipt_id']}" if "receipt_id" in body else str(body.get("type"))
