"""The order webhook's body: schema, bounds and the typed event it becomes (docs/webhooks.md, "Payload").

Every bound is checked here, at the door, so a delivery answered "accepted" can always be handled: an
amount or a time the handler or the database cannot take is a 400 naming the field, never a receipt that
fails later (an amount of 2^63−1 used to be accepted and then overflowed the buyer's ``bigint`` total on
every later order).

Bounds, chosen wide enough for any real shop and narrow enough for the totals to stay exact:

* ``amount_cents``: an integer, 0 ≤ amount ≤ :data:`MAX_ORDER_CENTS` (10^10 fen = ¥100,000,000 per order;
  0 is a real fully-discounted order).
* ``paid_at``: ISO-8601 with a UTC offset, not before :data:`EARLIEST_PAID_AT` (2000-01-01 UTC) and not
  more than :data:`FUTURE_SLACK` (one day) after our clock when the delivery arrives.
* ``order_id`` ≤ 128 and customer ids ≤ 64 printable characters (no control characters).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.events import Event, OrderPaid, OrderRefunded

ORDER_TYPES: dict[str, type[OrderPaid] | type[OrderRefunded]] = {
    "order.paid": OrderPaid,
    "order.refunded": OrderRefunded,
}
CUSTOMER_IDS = ("unionid", "openid", "external_userid")
MAX_ORDER_CENTS = 10**10  # ¥100,000,000 in one order: beyond any real shop, far below bigint
MAX_TOTAL_SPENT_CENTS = 10**15  # a customer's running total saturates here (bigint ends near 9.2 * 10^18)
EARLIEST_PAID_AT = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)  # the shop's clock may be off; a later paid_at is a bug or a forgery
MAX_ORDER_ID = 128
MAX_CUSTOMER_ID = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PayloadInvalid(ValueError):
    """A verified body that is not a valid order: ``field`` (e.g. ``data.amount_cents``) and ``reason``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def order_event_from_payload(payload: Any, now: datetime | None = None) -> Event:
    """The typed order event of a webhook body, or :class:`PayloadInvalid`.

    ``now`` is the arrival time (paid_at may not be more than a day after it); ``None`` when rebuilding
    a receipt that was stored earlier, whose paid_at was checked on arrival.
    """
    if not isinstance(payload, dict):
        raise PayloadInvalid("body", "must be a JSON object")
    kind = payload.get("type")
    if kind not in ORDER_TYPES:
        raise PayloadInvalid("type", f"must be one of {', '.join(ORDER_TYPES)}, got {_short(kind)}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadInvalid("data", "must be an object")
    order_id = _text(data.get("order_id"), "data.order_id", MAX_ORDER_ID)
    amount = _cents(data.get("amount_cents"))
    currency, paid_at = _currency(data.get("currency")), _paid_at(data.get("paid_at"), now)
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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any, field: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PayloadInvalid(field, "must be a non-empty string")
    if len(value) > max_len:
        raise PayloadInvalid(field, f"must be at most {max_len} characters, got {len(value)}")
    if _CONTROL.search(value):
        raise PayloadInvalid(field, "must not contain control characters")
    return value


def _cents(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadInvalid("data.amount_cents", "must be an integer number of fen")
    if not 0 <= value <= MAX_ORDER_CENTS:
        raise PayloadInvalid("data.amount_cents", f"must be between 0 and {MAX_ORDER_CENTS} fen, got {value}")
    return value


def _currency(value: Any) -> str:
    if value != "CNY":  # totals are kept in fen; another currency would corrupt them
        raise PayloadInvalid("data.currency", f"must be 'CNY', got {_short(value)}")
    return "CNY"


def _paid_at(value: Any, now: datetime | None) -> datetime:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise PayloadInvalid(
            "data.paid_at", "must be an ISO-8601 time with a UTC offset, e.g. 2026-11-23T18:00:00+08:00"
        )
    at = when.timestamp()  # not astimezone(): 9999-12-31T23:00-05:00 has no UTC datetime
    if at < EARLIEST_PAID_AT.timestamp():
        raise PayloadInvalid("data.paid_at", f"must not be before {EARLIEST_PAID_AT.date().isoformat()}")
    if now is not None and at > (now + FUTURE_SLACK).timestamp():
        raise PayloadInvalid("data.paid_at", "must not be more than a day in the future")
    return when


def _customer_ids(value: Any) -> dict[str, str | None]:
    if not isinstance(value, dict):
        raise PayloadInvalid("data.customer", "must be an object")
    ids: dict[str, str | None] = {}
    for name in CUSTOMER_IDS:
        raw = value.get(name)
        field = f"data.customer.{name}"
        if raw is not None and not isinstance(raw, str):
            raise PayloadInvalid(field, f"must be a string of at most {MAX_CUSTOMER_ID} characters")
        ids[name] = _text(raw, field, MAX_CUSTOMER_ID) if raw else None
    if not any(ids.values()):
        raise PayloadInvalid("data.customer", "needs at least one of unionid, openid, external_userid")
    return ids
