"""The order webhook through the running app: Standard Webhooks signatures → receipt → purchase facts."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from bot.clock import FrozenClock
from bot.config import ConfigError, build_settings, secret_values, whsec_key
from bot.db.models import Customer, Receipt
from bot.wechat import CallbackRejected
from handlers.orders.payload import MAX_ORDER_CENTS, MAX_TOTAL_SPENT_CENTS
from handlers.orders.tables import Order
from handlers.orders.webhook import order_event_from_payload, sign, verify
from tests.support.apps import ClientFactory, RunningBot, start_bot
from tests.support.settings import make_settings

SECRET = "whsec_" + base64.b64encode(b"siyu-orders-test-key-0123456789!").decode()
KEY = whsec_key(SECRET)
PATH = "/webhooks/orders"


def order(
    order_id: str = "SO-1001",
    amount: int = 12900,
    kind: str = "order.paid",
    paid_at: str = "2026-11-23T17:30:00+08:00",
    **customer: str,
) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": "2026-11-23T09:30:01Z",
        "data": {
            "order_id": order_id,
            "amount_cents": amount,
            "currency": "CNY",
            "paid_at": paid_at,
            "customer": customer or {"unionid": "uUNION1"},
        },
    }


def signed(body: bytes, clock: FrozenClock, msg_id: str = "msg_1", key: bytes = KEY, skew: int = 0) -> dict[str, str]:
    ts = str(int(clock.now().timestamp()) + skew)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": sign(key, msg_id, ts, body),
        "content-type": "application/json",
    }


async def post(bot: RunningBot, payload: dict[str, Any], clock: FrozenClock, msg_id: str = "msg_1") -> Any:
    body = json.dumps(payload).encode()
    resp = await bot.client.post(PATH, data=body, headers=signed(body, clock, msg_id))
    return resp.status, await resp.json()


async def customer(bot: RunningBot, **where: str) -> Customer:
    async with bot.services.sessions() as s:
        (column, value), *_ = where.items()
        found = await s.scalar(select(Customer).where(getattr(Customer, column) == value))
        assert found is not None
        return found


@pytest.fixture
async def bot(aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock) -> RunningBot:
    return await start_bot(aiohttp_client, make_settings(db_url, webhooks={"orders_secret": SECRET}), clock)


async def test_paid_order_updates_the_customer_once_however_often_it_arrives(
    bot: RunningBot, clock: FrozenClock
) -> None:
    assert await post(bot, order(unionid="uU1", openid="oO1"), clock) == (200, {"status": "accepted"})
    await bot.settle()
    # the shop retries the same delivery, then sends the same order under a new webhook-id
    clock.advance(60)
    assert await post(bot, order(unionid="uU1", openid="oO1"), clock) == (200, {"status": "duplicate"})
    assert await post(bot, order(unionid="uU1"), clock, msg_id="msg_2") == (200, {"status": "duplicate"})
    await bot.settle()
    c = await customer(bot, unionid="uU1")
    assert (c.purchase_count, c.total_spent_cents, c.openid) == (1, 12900, "oO1")
    assert c.last_purchase_at == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert await bot.count(Receipt) == 1 and await bot.count(Receipt, Receipt.status == "done") == 1
    [o] = await _orders(bot)
    assert (o.order_id, o.status, o.customer_id, o.amount_cents) == ("SO-1001", "paid", c.id, 12900)
    assert o.paid_at == c.last_purchase_at

    # a second, earlier order of the same buyer, named by openid only: last purchase stays the latest
    assert (await post(bot, order("SO-0999", 100, paid_at="2026-11-20T08:00:00Z", openid="oO1"), clock, "m3"))[0] == 200
    await bot.settle()
    c = await customer(bot, unionid="uU1")
    assert (c.purchase_count, c.total_spent_cents) == (2, 13000)
    assert c.last_purchase_at == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert await bot.count(Customer) == 1


async def test_concurrent_orders_of_one_new_buyer_all_count(bot: RunningBot, clock: FrozenClock) -> None:
    """Ten orders of a buyer nobody knows yet, at once: one customer, no lost increment."""
    results = await asyncio.gather(
        *(post(bot, order(f"SO-C{i}", 100 + i, unionid="uRUSH"), clock, f"c{i}") for i in range(10))
    )
    assert [status for status, _ in results] == [200] * 10
    await bot.settle()
    c = await customer(bot, unionid="uRUSH")
    assert (c.purchase_count, c.total_spent_cents) == (10, sum(100 + i for i in range(10)))
    assert await bot.count(Customer) == 1 and await bot.count(Receipt, Receipt.status == "done") == 10


async def test_refund_takes_the_order_back_once(bot: RunningBot, clock: FrozenClock) -> None:
    await post(bot, order("SO-1", 5000, paid_at="2026-11-01T10:00:00+08:00", external_userid="wmX"), clock, "a")
    await post(bot, order("SO-2", 7000, paid_at="2026-11-02T10:00:00+08:00", external_userid="wmX"), clock, "b")
    await bot.settle()
    refund = order("SO-2", 7000, "order.refunded", "2026-11-02T10:00:00+08:00", external_userid="wmX")
    assert await post(bot, refund, clock, "c") == (200, {"status": "accepted"})
    assert await post(bot, refund, clock, "d") == (200, {"status": "duplicate"})
    await bot.settle()
    c = await customer(bot, external_userid="wmX")
    assert (c.purchase_count, c.total_spent_cents) == (1, 5000)
    assert c.last_purchase_at == datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # the refunded order no longer counts
    assert {o.order_id: o.status for o in await _orders(bot)} == {"SO-1": "paid", "SO-2": "refunded"}


async def test_refund_before_the_payment_leaves_nothing_counted(bot: RunningBot, clock: FrozenClock) -> None:
    await post(bot, order("SO-9", 900, "order.refunded", openid="oLATE"), clock, "r")
    await bot.settle()
    await post(bot, order("SO-9", 900, openid="oLATE"), clock, "p")
    await bot.settle()
    c = await customer(bot, openid="oLATE")
    assert (c.purchase_count, c.total_spent_cents, c.last_purchase_at) == (0, 0, None)
    assert [o.status for o in await _orders(bot)] == ["refunded"]


async def test_unknown_buyer_is_created_with_every_id_and_known_rows_are_linked(
    bot: RunningBot, clock: FrozenClock
) -> None:
    await post(bot, order("SO-N", 1, unionid="uNEW", openid="oNEW", external_userid="wmNEW"), clock, "n")
    await bot.settle()
    c = await customer(bot, unionid="uNEW")
    assert (c.openid, c.external_userid, c.purchase_count) == ("oNEW", "wmNEW", 1)
    # a follower we already know (by openid, unionid not yet known) buys: same row, unionid linked
    now = clock.now()
    async with bot.services.sessions() as s, s.begin():
        s.add(Customer(openid="oFAN", mp_follower=True, created_at=now, updated_at=now))
    await post(bot, order("SO-F", 300, unionid="uFAN", openid="oFAN"), clock, "f")
    await bot.settle()
    fan = await customer(bot, openid="oFAN")
    assert (fan.unionid, fan.mp_follower, fan.purchase_count, fan.total_spent_cents) == ("uFAN", True, 1, 300)
    assert await bot.count(Customer) == 2


def _tamper(body: bytes, h: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"12900", b"1"), h


def _wrong_secret(body: bytes, h: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {**h, "webhook-signature": sign(b"x" * 32, h["webhook-id"], h["webhook-timestamp"], body)}


SIGNATURE_FAILURES: dict[str, Any] = {
    "no headers": lambda body, h: (body, {}),
    "no signature": lambda body, h: (body, {k: v for k, v in h.items() if k != "webhook-signature"}),
    "wrong secret": _wrong_secret,
    "tampered body": _tamper,
    "other webhook-id": lambda body, h: (body, {**h, "webhook-id": "msg_2"}),
    "malformed signature": lambda body, h: (body, {**h, "webhook-signature": "v1," + h["webhook-signature"][3:13]}),
    "not base64": lambda body, h: (body, {**h, "webhook-signature": "v1,@@@not-base64@@@"}),
    "no version": lambda body, h: (body, {**h, "webhook-signature": h["webhook-signature"][3:]}),
    "wrong version": lambda body, h: (body, {**h, "webhook-signature": "v2" + h["webhook-signature"][2:]}),
    "timestamp not a number": lambda body, h: (body, {**h, "webhook-timestamp": "1.7e9"}),
    "dot in webhook-id": lambda body, h: (body, {**h, "webhook-id": "a.b"}),
}  # fmt: skip


async def test_every_signature_failure_is_401_and_stores_nothing(
    bot: RunningBot, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps(order()).encode()
    for name, make in SIGNATURE_FAILURES.items():
        data, headers = make(body, signed(body, clock))
        resp = await bot.client.post(PATH, data=data, headers=headers)
        assert resp.status == 401, name
        assert (await resp.json())["status"] == "rejected", name
    for skew in (-360, 360):  # 6 minutes old, 6 minutes ahead
        resp = await bot.client.post(PATH, data=body, headers=signed(body, clock, skew=skew))
        assert resp.status == 401, skew
    # within the tolerance either way, and a rotation header where only the second entry is valid
    for skew in (-299, 299):
        resp = await bot.client.post(PATH, data=body, headers=signed(body, clock, f"ok{skew}", skew=skew))
        assert resp.status == 200, skew
    headers = signed(json.dumps(order("SO-R")).encode(), clock, "rot")
    headers["webhook-signature"] = f"v1,{base64.b64encode(b'0' * 32).decode()} v1a,AAAA {headers['webhook-signature']}"
    assert (await bot.client.post(PATH, data=json.dumps(order("SO-R")).encode(), headers=headers)).status == 200
    await bot.settle()
    assert sorted(o.order_id for o in await _orders(bot)) == ["SO-1001", "SO-R"]
    assert await bot.count(Receipt) == 2
    for secret in (SECRET, SECRET[6:]):
        assert secret not in caplog.text


async def test_verified_but_invalid_bodies_are_400_and_oversized_ones_413(bot: RunningBot, clock: FrozenClock) -> None:
    no_customer = order()
    no_customer["data"]["customer"] = {}
    naive_time = order(paid_at="2026-11-23T17:30:00")
    negative = order(amount=-1)
    bad_type = order(kind="order.shipped")
    for body in (b"{not json", b"", b"[]", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, *(
        json.dumps(p).encode() for p in (no_customer, naive_time, negative, bad_type)
    )):  # fmt: skip
        resp = await bot.client.post(PATH, data=body, headers=signed(body, clock))
        assert resp.status == 400, body[:40]
        assert (await resp.json())["reason"]
    big = json.dumps({**order(), "pad": "x" * 70_000}).encode()
    assert (await bot.client.post(PATH, data=big, headers=signed(big, clock))).status == 413
    assert await bot.count(Receipt) == 0


def _with(path: str, value: Any) -> dict[str, Any]:
    payload = order()
    *parents, last = path.split(".")
    target = payload
    for name in parents:
        target = target[name]
    target[last] = value
    return payload


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("data.amount_cents", 2**63 - 1),  # was accepted, then overflowed the buyer's total forever
        ("data.amount_cents", MAX_ORDER_CENTS + 1),
        ("data.amount_cents", 129.0),
        ("data.paid_at", "0001-01-01T00:00:00+00:00"),  # was accepted, then failed in the handler
        ("data.paid_at", "9999-12-31T23:59:59+00:00"),
        ("data.paid_at", "9999-12-31T23:00:00-05:00"),  # no UTC datetime exists for it
        ("data.paid_at", "1999-12-31T23:59:59Z"),
        ("data.paid_at", "2026-11-24T10:00:01Z"),  # a day and a second after the clock
        ("data.currency", "USD"),
        ("data.order_id", "S" * 129),
        ("data.order_id", "SO-1\n2"),
        ("data.customer.openid", "o" * 65),
        ("data.customer.unionid", 42),
    ],
)
async def test_out_of_bounds_orders_are_400_naming_the_field(
    bot: RunningBot, clock: FrozenClock, field: str, value: Any
) -> None:
    status, body = await post(bot, _with(field, value), clock)
    assert status == 400 and body["status"] == "rejected"
    assert body["field"] == field and body["reason"].startswith(field + " ")
    assert await bot.count(Receipt) == 0


async def test_orders_at_the_bounds_are_accepted_and_counted(bot: RunningBot, clock: FrozenClock) -> None:
    cases = [("SO-MAX", MAX_ORDER_CENTS, "2026-11-24T09:59:59Z"), ("SO-FREE", 0, "2000-01-01T00:00:00Z")]
    for order_id, amount, paid_at in cases:
        assert await post(bot, order(order_id, amount, paid_at=paid_at), clock, msg_id=order_id) == (
            200,
            {"status": "accepted"},
        )
    await bot.settle()
    assert [r.status for r in await bot.receipts()] == ["done", "done"]
    c = await customer(bot, unionid="uUNION1")
    assert (c.purchase_count, c.total_spent_cents) == (2, MAX_ORDER_CENTS)


async def test_a_customer_total_saturates_instead_of_overflowing(bot: RunningBot, clock: FrozenClock) -> None:
    """A total already at the bigint limit (written before the door checked amounts) takes more orders."""
    assert await post(bot, order("SO-1", 100), clock, msg_id="m1") == (200, {"status": "accepted"})
    await bot.settle()
    async with bot.services.sessions() as s, s.begin():
        (await s.scalars(select(Customer).where(Customer.unionid == "uUNION1"))).one().total_spent_cents = 2**63 - 1
    assert await post(bot, order("SO-2", 12900), clock, msg_id="m2") == (200, {"status": "accepted"})
    await bot.settle()
    assert [r.status for r in await bot.receipts()] == ["done", "done"]
    c = await customer(bot, unionid="uUNION1")
    assert (c.purchase_count, c.total_spent_cents) == (2, MAX_TOTAL_SPENT_CENTS)


async def test_a_body_arriving_in_pieces_is_verified_whole(bot: RunningBot, clock: FrozenClock) -> None:
    """Chunked transfer, 500 bytes at a time: the signature is over the whole body, not the first piece."""
    body = json.dumps(order(), indent=2).encode() + b" " * 3000

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 500):
            yield body[i : i + 500]
            await asyncio.sleep(0.005)

    resp = await bot.client.post(PATH, data=pieces(), headers=signed(body, clock))
    assert (resp.status, await resp.json()) == (200, {"status": "accepted"})
    big = b" " * 70_000

    async def too_much() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 10_000):
            yield big[i : i + 10_000]

    assert (await bot.client.post(PATH, data=too_much(), headers=signed(big, clock, "big"))).status == 413


async def test_without_a_secret_the_endpoint_does_not_exist(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    bot = await start_bot(aiohttp_client, make_settings(db_url), clock)
    body = json.dumps(order()).encode()
    assert (await bot.client.post(PATH, data=body, headers=signed(body, clock))).status == 404


async def test_sweeper_rebuilds_a_stored_order_after_a_crash(bot: RunningBot, clock: FrozenClock) -> None:
    """A receipt committed but never handled (the process died after the 200) is finished by the sweeper."""
    event = order_event_from_payload(order("SO-CRASH", 4200, unionid="uCRASH"))
    assert bot.services.sessions is not None and bot.services.sweeper is not None
    async with bot.services.sessions() as s, s.begin():
        s.add(
            Receipt(
                dedup_key=event.dedup_key, platform="shop", kind=event.kind, payload=event.raw,
                received_at=clock.now(), status="pending", attempts=0, lease_until=clock.now() + timedelta(seconds=30),
            )
        )  # fmt: skip
    assert await bot.services.sweeper.sweep_once() == 0  # lease still running
    clock.advance(31)
    assert await bot.services.sweeper.sweep_once() == 1
    await bot.settle()
    c = await customer(bot, unionid="uCRASH")
    assert (c.purchase_count, c.total_spent_cents) == (1, 4200)
    assert [r.status for r in await bot.receipts()] == ["done"]
    # the shop's retry of that delivery now finds the receipt
    assert await post(bot, order("SO-CRASH", 4200, unionid="uCRASH"), clock) == (200, {"status": "duplicate"})


def test_standard_webhooks_reference_vector() -> None:
    """The signature example of the reference libraries (standard-webhooks / svix test suites)."""
    key = whsec_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body, msg_id, ts = b'{"test": 2432232314}', "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330"
    assert sign(key, msg_id, ts, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sign(key, msg_id, ts, body)}
    at = datetime.fromtimestamp(1614265330 + 10, UTC)
    assert verify(key, headers, body, at, 300) == msg_id
    with pytest.raises(CallbackRejected):
        verify(key, headers, body, at + timedelta(minutes=6), 300)


def test_verification_agrees_with_the_library_and_keeps_our_tolerance_and_clock() -> None:
    """What standardwebhooks' own Webhook.verify accepts we accept; the tolerance is ours, on the given clock."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    key, body, msg_id = whsec_key(secret), b'{"test": 1}', "msg_lib"
    now = datetime.now(UTC).replace(microsecond=0)
    ts = str(int(now.timestamp()))
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sign(key, msg_id, ts, body)}
    Webhook(secret).verify(body, headers)  # the reference implementation agrees with our signature
    assert verify(key, headers, body, now, 300) == msg_id
    assert verify(key, headers, body, now + timedelta(minutes=30), 3600) == msg_id  # the library fixes 5 minutes
    good = headers["webhook-signature"]
    for bad in (good.replace("v1,", "v1a,"), good.rstrip("="), f"{good}x", f" {good[:-2]}", "v1,签名", good.lower()):
        with pytest.raises(CallbackRejected, match="no valid signature"):
            verify(key, {**headers, "webhook-signature": bad}, body, now, 300)


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 bytes"),
    ],
)
def test_bad_secret_names_the_key_and_never_shows_the_value(secret: str, reason: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_settings({"webhooks": {"orders_secret": secret}}, env={})
    assert exc.value.key == "webhooks.orders_secret" and reason in exc.value.reason
    assert secret not in str(exc.value)


def test_secret_from_the_environment_is_masked() -> None:
    s = build_settings({}, env={"SIYU_WEBHOOKS_ORDERS_SECRET": SECRET})
    assert s.webhooks.orders_secret.get() == SECRET
    assert SECRET not in repr(s) and SECRET[6:] not in repr(s)
    assert {SECRET, SECRET[6:]} <= set(secret_values(s))


async def _orders(bot: RunningBot) -> list[Order]:
    async with bot.services.sessions() as s:
        return list((await s.scalars(select(Order).order_by(Order.id))).all())
