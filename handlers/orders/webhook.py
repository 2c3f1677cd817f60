"""Webhooks in from the brand's shop: ``POST /webhooks/orders``, signed per Standard Webhooks.

Verification (Standard Webhooks spec 1.0, "Verifying webhook authenticity"; the signature computed by
the ``standardwebhooks`` reference library): the signed content is
``{webhook-id}.{webhook-timestamp}.{raw body}``, HMAC-SHA256 keyed with the base64-decoded
``whsec_`` secret; ``webhook-signature`` is a space-separated list of ``v1,<base64>`` entries (more
than one during a secret rotation) and any one match is enough, compared in constant time; a
``webhook-timestamp`` further than ``webhooks.tolerance_seconds`` from our clock, either way, is a
replay. Every verification failure answers 401, a body over 64 KiB 413, and a verified body that is
not a valid order 400 — nothing is stored for any of them. A valid order becomes an
:class:`~bot.events.OrderPaid` / :class:`~bot.events.OrderRefunded` event that goes through the same
durable inbox as WeChat callbacks: 200 only after its receipt is committed, idempotent on the order id
(a retried delivery or a new ``webhook-id`` for the same order answers ``duplicate``). The payload
schema is documented in docs/webhooks.md.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web
from standardwebhooks import Webhook

from bot.clock import Clock
from bot.config import Settings, whsec_key
from bot.events import Event, Platform
from bot.transport import CallbackEndpoint, Intake
from bot.wechat import CallbackRejected
from handlers.orders.payload import PayloadInvalid, order_event_from_payload, stored_order_event

log = logging.getLogger(__name__)
__all__ = ["OrdersEndpoint", "add_webhook_routes", "order_event_from_payload", "sign", "stored_order_event", "verify"]

MAX_BODY = 64 * 1024
_MSG_ID = re.compile(r"^[\x21-\x2d\x2f-\x7e]{1,256}$")  # printable ASCII without '.' (spec: no '.' in the id)
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class PayloadRejected(CallbackRejected):
    """A verified body that is not a valid order: 400 naming the ``field`` (``body`` when not JSON at all)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(400, reason)
        self.field = field


class WebhookIntake(Intake, Protocol):
    clock: Clock
    settings: Settings


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery (the sender's side; used by docs and tests)."""
    return Webhook(key).sign(msg_id, datetime.fromtimestamp(int(timestamp), UTC), body)


def verify(key: bytes, headers: Mapping[str, str], body: bytes, now: datetime, tolerance: int) -> str:
    """Check one delivery's headers against its raw body; the ``webhook-id``, or :class:`CallbackRejected` 401.

    The signature is the ``standardwebhooks`` library's, matched against each entry in constant time as its
    ``Webhook.verify`` does; the headers and timestamp are checked here because ``Webhook.verify`` reads the
    wall clock with a fixed 5-minute tolerance (tests freeze the clock; ``tolerance_seconds`` is configurable)."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signatures):
        raise CallbackRejected(401, "missing webhook-id, webhook-timestamp or webhook-signature header")
    if not _MSG_ID.match(msg_id):
        raise CallbackRejected(401, "malformed webhook-id")
    if not _TIMESTAMP.match(timestamp):
        raise CallbackRejected(401, "malformed webhook-timestamp (integer Unix seconds expected)")
    skew = int(timestamp) - now.timestamp()
    if skew < -tolerance:
        raise CallbackRejected(401, "webhook-timestamp too old")
    if skew > tolerance:
        raise CallbackRejected(401, "webhook-timestamp too far in the future")
    expected = sign(key, msg_id, timestamp, body).encode()
    # Every entry is compared (v1a and unknown schemes simply never match), like Webhook.verify.
    if any(hmac.compare_digest(expected, entry.encode()) for entry in signatures.split(" ")):
        return msg_id
    raise CallbackRejected(401, "no valid signature")


class OrdersEndpoint(CallbackEndpoint):
    """``POST /webhooks/orders``: verify → parse → durable receipt → 200 → dispatch."""

    platform: Platform = "shop"

    def __init__(self, intake: WebhookIntake, key: bytes, tolerance: int) -> None:
        super().__init__(intake, MAX_BODY, intake.settings.server.body_timeout_seconds)
        self._clock = intake.clock
        self._key = key
        self._tolerance = tolerance

    async def receive(self, request: web.Request) -> web.Response:
        try:
            body = await self._read(request)
            msg_id = verify(self._key, request.headers, body, self._clock.now(), self._tolerance)
            event = self._parse(body)
        except CallbackRejected as exc:
            return self._rejected(exc, request)
        receipt_id, dispatch, failure = await self._store(event)
        if failure is not None:
            return failure
        log.info(
            "order webhook %s",
            "duplicate" if receipt_id is None else "accepted",
            extra={"webhook_id": msg_id, "event_kind": event.kind, "receipt_id": receipt_id},
        )
        if receipt_id is None:
            return web.json_response({"status": "duplicate"})
        if dispatch:  # False when no handler wants the event: its receipt is already done
            self._dispatcher.submit(receipt_id, event)
        return web.json_response({"status": "accepted"})

    async def _read(self, request: web.Request) -> bytes:
        """The raw body (signatures are over these exact bytes): capped, and cut off if it trickles."""
        return await self._read_body(request)

    def _parse(self, body: bytes) -> Event:
        try:
            payload = json.loads(body)
        except ValueError as exc:  # includes bodies that are not UTF-8
            raise PayloadRejected("body", f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise PayloadRejected("body", "body is not valid JSON: nested too deeply") from None
        try:
            return order_event_from_payload(payload, self._clock.now())
        except PayloadInvalid as exc:
            raise PayloadRejected(exc.field, str(exc)) from None

    def _rejection(self, exc: CallbackRejected) -> web.Response:
        body = {"status": "rejected", "reason": exc.reason}
        if isinstance(exc, PayloadRejected):
            body["field"] = exc.field
        return web.json_response(body, status=exc.status)


def add_webhook_routes(app: web.Application, intake: WebhookIntake) -> None:
    """Register the order webhook when ``webhooks.orders_secret`` is set (otherwise the path is a 404)."""
    cfg = intake.settings.webhooks
    if not cfg.orders_secret:
        return
    endpoint = OrdersEndpoint(intake, whsec_key(cfg.orders_secret.get()), cfg.tolerance_seconds)
    app.router.add_post(cfg.orders_path, endpoint.receive)
