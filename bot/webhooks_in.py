"""Webhooks in from the brand's shop: ``POST /webhooks/orders``, signed per Standard Webhooks.

Verification (Standard Webhooks spec 1.0, "Verifying webhook authenticity"): the signed content is
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

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from bot.clock import Clock
from bot.config import Settings, whsec_key
from bot.events import Event, OrderPaid, OrderRefunded, Platform
from bot.transport import CallbackEndpoint, Intake
from bot.wechat import CallbackRejected

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
ORDER_TYPES: dict[str, type[OrderPaid] | type[OrderRefunded]] = {
    "order.paid": OrderPaid,
    "order.refunded": OrderRefunded,
}
CUSTOMER_IDS = ("unionid", "openid", "external_userid")
_MSG_ID = re.compile(r"^[\x21-\x2d\x2f-\x7e]{1,256}$")  # printable ASCII without '.' (spec: no '.' in the id)
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_MAX_CENTS = 2**63 - 1


class PayloadInvalid(ValueError):
    """A verified body that is not a valid order; the message is the reason given back (400)."""


class WebhookIntake(Intake, Protocol):
    clock: Clock
    settings: Settings


def _mac(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery (the sender's side; used by docs and tests)."""
    return "v1," + base64.b64encode(_mac(key, msg_id, timestamp, body)).decode()


def verify(key: bytes, headers: Mapping[str, str], body: bytes, now: datetime, tolerance: int) -> str:
    """Check one delivery's headers against its raw body; the ``webhook-id``, or :class:`CallbackRejected` 401."""
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
    expected = _mac(key, msg_id, timestamp, body)
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1":
            continue  # v1a (asymmetric) and unknown schemes are not ours to check
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            return msg_id
    raise CallbackRejected(401, "no valid signature")


def order_event_from_payload(payload: Any) -> Event:
    """The typed order event of a webhook body (also rebuilds stored receipts for the sweeper)."""
    if not isinstance(payload, dict):
        raise PayloadInvalid("body must be a JSON object")
    kind = payload.get("type")
    if kind not in ORDER_TYPES:
        raise PayloadInvalid(f"type must be one of {', '.join(ORDER_TYPES)}, got {kind!r}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadInvalid("data must be an object")
    order_id, amount = _text(data, "order_id", 128), _cents(data.get("amount_cents"))
    currency, paid_at = _currency(data.get("currency")), _paid_at(data.get("paid_at"))
    ids = _customer_ids(data.get("customer"))
    return ORDER_TYPES[kind](
        platform="shop",
        account="shop",
        create_time=int(paid_at.timestamp()),
        raw=payload,
        order_id=order_id,
        amount_cents=amount,
        currency=currency,
        unionid=ids["unionid"],
        openid=ids["openid"],
        external_userid=ids["external_userid"],
    )


def stored_order_event(payload: dict[str, Any]) -> Event | None:
    """The event of a stored shop receipt, or None when it no longer parses (the sweeper marks it failed)."""
    try:
        return order_event_from_payload(payload)
    except PayloadInvalid:
        return None


def _text(data: dict[str, Any], name: str, max_len: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PayloadInvalid(f"data.{name} must be a non-empty string")
    if len(value) > max_len:
        raise PayloadInvalid(f"data.{name} is longer than {max_len} characters")
    return value


def _cents(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_CENTS:
        raise PayloadInvalid("data.amount_cents must be an integer ≥ 0 (fen)")
    return value


def _currency(value: Any) -> str:
    if value != "CNY":  # totals are kept in fen; another currency would corrupt them
        raise PayloadInvalid(f"data.currency must be 'CNY', got {value!r}")
    return "CNY"


def _paid_at(value: Any) -> datetime:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise PayloadInvalid("data.paid_at must be an ISO-8601 time with a UTC offset, e.g. 2026-11-23T18:00:00+08:00")
    return when


def _customer_ids(value: Any) -> dict[str, str | None]:
    if not isinstance(value, dict):
        raise PayloadInvalid("data.customer must be an object")
    ids: dict[str, str | None] = {}
    for name in CUSTOMER_IDS:
        raw = value.get(name)
        if raw is not None and (not isinstance(raw, str) or len(raw) > 64):
            raise PayloadInvalid(f"data.customer.{name} must be a string of at most 64 characters")
        ids[name] = raw or None
    if not any(ids.values()):
        raise PayloadInvalid("data.customer needs at least one of unionid, openid, external_userid")
    return ids


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

    @staticmethod
    def _parse(body: bytes) -> Event:
        try:
            payload = json.loads(body)
        except ValueError as exc:  # includes bodies that are not UTF-8
            raise CallbackRejected(400, f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise CallbackRejected(400, "body is not valid JSON: nested too deeply") from None
        try:
            return order_event_from_payload(payload)
        except PayloadInvalid as exc:
            raise CallbackRejected(400, str(exc)) from None

    def _rejection(self, exc: CallbackRejected) -> web.Response:
        return web.json_response({"status": "rejected", "reason": exc.reason}, status=exc.status)


def add_webhook_routes(app: web.Application, intake: WebhookIntake) -> None:
    """Register the order webhook when ``webhooks.orders_secret`` is set (otherwise the path is a 404)."""
    cfg = intake.settings.webhooks
    if not cfg.orders_secret:
        return
    endpoint = OrdersEndpoint(intake, whsec_key(cfg.orders_secret.get()), cfg.tolerance_seconds)
    app.router.add_post(cfg.orders_path, endpoint.receive)
