"""``/api/v1/`` channels and their figures, events and their retry, orders, health."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.db.models import Customer, OutboxCall, Receipt
from handlers.growth.tables import Touch
from handlers.orders.tables import Order
from tests.api.support import Api
from tests.support.apps import rows


async def test_channels_and_their_figures(api: Api) -> None:
    now = api.bot.services.clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        c = Customer(external_userid="wmStats01", created_at=now, updated_at=now, wecom_friend=True)
        s.add(c)
        await s.flush()
        s.add(Touch(customer_id=c.id, channel_code="pkgcard", platform="wecom_friend", action="friend_added",
                    first=True, occurred_at=now - timedelta(days=8)))  # fmt: skip
    listed = await api.get("/channels", key="read")
    assert "pkgcard" in [ch["code"] for ch in listed.body["items"]]
    stats = await api.get("/channels/pkgcard/stats", key="read")
    assert (stats.body["adds"], stats.body["unique"], stats.body["net"], stats.body["retention_7d"]) == (1, 1, 1, 1.0)
    assert (await api.get("/channels/pkgcard/stats", headers={"If-None-Match": stats.headers["ETag"]})).status == 304
    since = (now - timedelta(days=1)).date().isoformat()
    assert (await api.get(f"/channels/pkgcard/stats?since={since}")).body["adds"] == 0
    assert (await api.get("/channels/unattributed/stats")).body["adds"] == 0
    assert (await api.get("/channels/nope/stats")).status == 404
    assert (await api.get("/channels/pkgcard/stats?since=monday")).body["errors"][0]["field"] == "since"


async def _receipt(api: Api, status: str, n: int) -> int:
    now = api.bot.services.clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        r = Receipt(dedup_key=f"test:{n}", platform="wecom", kind="change_external_contact", payload={},
                    received_at=now, status=status, attempts=5 if status == "failed" else 1, lease_until=now,
                    finished_at=now, error="boom" if status == "failed" else None)  # fmt: skip
        s.add(r)
        await s.flush()
        return r.id


async def test_events_list_and_a_failed_one_retried(api: Api) -> None:
    done, failed = await _receipt(api, "done", 1), await _receipt(api, "failed", 2)
    everything = await api.get("/events", key="read")
    assert [e["id"] for e in everything.body["items"]] == [failed, done]
    only_failed = await api.get("/events?status=failed&limit=1", key="read")
    assert [e["id"] for e in only_failed.body["items"]] == [failed] and only_failed.body["next_cursor"] is None
    assert (await api.get("/events?status=lost")).status == 400
    assert (await api.post(f"/events/{failed}/retry", key="write")).status == 403
    retried = await api.post(f"/events/{failed}/retry", key="admin")
    assert retried.status == 202 and retried.body["status"] == "pending" and retried.body["attempts"] == 0
    (row,) = await rows(api.bot, Receipt, Receipt.id == failed)
    assert row.owner is None and row.lease_until < api.bot.services.clock.now()  # the sweeper's to take
    assert (await api.post(f"/events/{failed}/retry", key="admin")).status == 409
    assert (await api.post(f"/events/{done}/retry", key="admin")).status == 409
    assert (await api.post("/events/424242/retry", key="admin")).status == 404


def _order(order_id: str, **data: Any) -> dict[str, Any]:
    body = {"order_id": order_id, "amount_cents": 2900, "currency": "CNY", "paid_at": "2026-11-23T17:30:00+08:00",
            "customer": {"external_userid": "wmBuyer01"}}  # fmt: skip
    return {"type": "order.paid", "data": {**body, **data}}


async def test_orders_go_through_the_inbox_like_the_webhook(api: Api) -> None:
    assert (await api.post("/orders", key="read", json=_order("A-9"))).status == 403
    accepted = await api.post("/orders", key="write", json=_order("A-9"))
    assert accepted.status == 202 and accepted.body["status"] == "accepted"
    await api.bot.settle()
    (receipt,) = await api.bot.receipts()
    assert (receipt.platform, receipt.status, receipt.id) == ("shop", "done", accepted.body["receipt_id"])
    assert [o.order_id for o in await rows(api.bot, Order)] == ["A-9"]
    duplicate = await api.post("/orders", key="write", json=_order("A-9"))
    assert duplicate.status == 200 and duplicate.body["status"] == "duplicate"
    bad = await api.post("/orders", key="write", json=_order("A-10", amount_cents=-1))
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "data.amount_cents"
    assert len(await api.bot.receipts()) == 1


async def test_health_reports_database_tokens_backlog_and_errors(api: Api) -> None:
    await _receipt(api, "failed", 3)
    now = api.bot.services.clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        s.add(OutboxCall(idempotency_key="t:1", platform="wecom", api="message/send", payload={}, state="pending",
                         created_at=now, next_attempt_at=now))  # fmt: skip
    health = await api.get("/health", key="read")
    assert health.status == 200 and health.body["database"] == "ok"
    assert health.body["outbox"] == {"pending": 1}
    assert health.body["tokens"] == {"wecom": {"state": "missing", "expires_at": None},
                                     "mp": {"state": "missing", "expires_at": None}}  # fmt: skip
    assert health.body["last_errors"]["events"][0]["error"] == "boom"
