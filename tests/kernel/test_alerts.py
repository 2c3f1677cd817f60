"""A receipt that ends failed is visible: ERROR log, /metrics, ``siyu-bot events --status failed`` and a
best-effort POST to ``alerts.url`` — checked against a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from bot.alerts import FAILED_TOTAL, FailureAlerts, report_receipt_failed
from bot.clock import FrozenClock
from bot.config import ConfigError, whsec_key
from bot.content_runtime import empty_content
from bot.context import Context
from bot.db.engine import make_engine, sessionmaker
from bot.db.models import Receipt
from bot.dispatcher import Router
from bot.events import OrderPaid
from bot.metrics import Metrics
from bot.services import Services
from handlers import main
from handlers.orders.webhook import sign
from tests.support.apps import ClientFactory, start_bot
from tests.support.settings import make_settings

SECRET = "s3cret-token-value-never-sent"
HOOK_KEY = "robot-key-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"siyu-alerts-test-key-0123456789!").decode()


def bot_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    got = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        got.bodies.append(await request.json())
        got.arrived.set()
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/slow", slow)
    server = await aiohttp_server(app)
    got.url = str(server.make_url("/hook"))
    return got


async def test_a_failed_receipt_is_logged_counted_and_posted_without_secrets(
    receiver: Receiver, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    url = f"{receiver.url}?key={HOOK_KEY}"
    alerts = FailureAlerts(url, metrics, clock, secrets=[SECRET], timeout=2)
    assert HOOK_KEY not in repr(alerts)
    with caplog.at_level(logging.INFO):
        await alerts.receipt_failed(7, "order_paid", f"PlatformError: 40001 invalid credential {SECRET}")
        await alerts.close()
    assert receiver.bodies == [
        {
            "type": "receipt.failed",
            "receipt_id": 7,
            "kind": "order_paid",
            "error": "PlatformError: 40001 invalid credential ***",
            "at": clock.now().isoformat(),
        }
    ]
    assert metrics.value(FAILED_TOTAL, kind="order_paid") == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "receipt 7 (order_paid) failed" in errors[0].getMessage()
    ours = bot_log(caplog)  # the receiver's own access log shows its URL, of course
    assert SECRET not in ours and HOOK_KEY not in ours


async def test_a_slow_or_dead_hook_never_holds_up_the_caller(
    receiver: Receiver, clock: FrozenClock, caplog: pytest.LogCaptureFixture, unused_tcp_port: int
) -> None:
    slow = FailureAlerts(receiver.url.replace("/hook", "/slow") + f"?key={HOOK_KEY}", Metrics(), clock, timeout=0.3)
    dead = FailureAlerts(f"http://127.0.0.1:{unused_tcp_port}/hook?key={HOOK_KEY}", Metrics(), clock, timeout=0.3)
    with caplog.at_level(logging.WARNING):
        started = time.perf_counter()
        for n in range(5):
            await slow.receipt_failed(n, "friend_added", "boom")
            await dead.receipt_failed(n, "friend_added", "boom")
        assert time.perf_counter() - started < 0.2  # the POSTs run in the background
        await asyncio.gather(slow.close(grace=5), dead.close(grace=5))
        assert time.perf_counter() - started < 2  # each gave up after its 0.3 s timeout
    unreachable = [r.getMessage() for r in caplog.records if "alert hook unreachable" in r.getMessage()]
    assert len(unreachable) == 10
    assert HOOK_KEY not in bot_log(caplog) and "127.0.0.1" not in bot_log(caplog)


async def test_without_a_url_a_failure_is_still_logged_and_counted(
    clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    alerts = FailureAlerts("", metrics, clock)
    await alerts.receipt_failed(3, "order_refunded", "ValueError: no")
    await alerts.receipt_failed(4, "order_refunded", "ValueError: no")
    await alerts.close()
    assert metrics.value(FAILED_TOTAL, kind="order_refunded") == 2
    assert "receipt 4 (order_refunded) failed" in caplog.text


async def test_the_dispatcher_call_site_reports_through_the_apps_alerts(sqlite_url: str, clock: FrozenClock) -> None:
    services = Services(make_settings(sqlite_url), clock, random.Random(1), empty_content("."))
    await report_receipt_failed(services, 1, "order_paid", "x")  # alerts not set up: nothing, no error
    await report_receipt_failed(None, 1, "order_paid", "x")
    services.alerts = FailureAlerts("", services.metrics, clock)
    await report_receipt_failed(services, 2, "order_paid", None)
    assert services.metrics.value(FAILED_TOTAL, kind="order_paid") == 1


def test_alerts_url_is_checked_and_treated_as_a_secret(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match=r"alerts\.url") as exc:
        make_settings(sqlite_url, alerts={"url": f"ftp://example.com/{HOOK_KEY}"})
    assert HOOK_KEY not in str(exc.value)
    settings = make_settings(sqlite_url, alerts={"url": f"https://example.com/hook?key={HOOK_KEY}"})
    assert HOOK_KEY not in repr(settings)


async def test_the_running_app_reports_failed_receipts_in_metrics_and_to_the_hook(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    """A handler that keeps failing ends its receipt failed: /metrics shows it (gauge from the database);
    the dispatcher reports it to the app's FailureAlerts, which counts it and POSTs it to ``alerts.url``."""
    broken = Router("broken")

    @broken.on(OrderPaid)
    async def explode(event: OrderPaid, ctx: Context) -> None:
        raise RuntimeError("the handler broke")

    settings = make_settings(
        db_url, webhooks={"orders_secret": WHSEC}, inbox={"max_attempts": 1}, alerts={"url": receiver.url}
    )
    bot = await start_bot(aiohttp_client, settings, clock, routers=[broken])
    payload = {
        "type": "order.paid",
        "data": {"order_id": "SO-F", "amount_cents": 100, "currency": "CNY",
                 "paid_at": "2026-11-23T17:30:00+08:00", "customer": {"openid": "oF"}},
    }  # fmt: skip
    body, ts = json.dumps(payload).encode(), str(int(clock.now().timestamp()))
    headers = {
        "webhook-id": "msg_f",
        "webhook-timestamp": ts,
        "webhook-signature": sign(whsec_key(WHSEC), "msg_f", ts, body),
    }
    resp = await bot.client.post("/webhooks/orders", data=body, headers=headers)
    assert resp.status == 200
    await bot.settle()
    [receipt] = await bot.receipts()
    assert (receipt.status, receipt.error) == ("failed", "RuntimeError: the handler broke")
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    assert receiver.bodies[0]["receipt_id"] == receipt.id and receiver.bodies[0]["kind"] == "order_paid"
    text = await (await bot.client.get("/metrics")).text()
    assert 'siyu_inbox_failed{kind="order_paid"} 1.0' in text.splitlines()
    assert 'siyu_receipts_failed_total{kind="order_paid"} 1.0' in text.splitlines()


def test_events_lists_failed_receipts_with_their_error(
    sqlite_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def store() -> None:
        engine = make_engine(make_settings(sqlite_url).database)
        async with sessionmaker(engine)() as s, s.begin():
            for n, status in enumerate(("done", "failed")):
                s.add(
                    Receipt(
                        dedup_key=f"k{n}", platform="shop", kind="order_paid", payload={}, received_at=clock.now(),
                        status=status, attempts=5, lease_until=clock.now() + timedelta(seconds=30),
                        error="RuntimeError: the handler broke" if status == "failed" else None,
                    )
                )  # fmt: skip
        await engine.dispose()

    asyncio.run(store())
    monkeypatch.setenv("SIYU_DATABASE_URL", sqlite_url)
    assert main(["events", "--status", "failed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "failed" in lines[1] and lines[1].endswith("RuntimeError: the handler broke")
    assert lines[2].startswith("platform calls not delivered") and lines[2].endswith(": none")
