"""``/api/v1/webhooks/…`` on the real path: the bot with the simulated WeChat (a Rig) and a receiver that
verifies every delivery with ``standardwebhooks``; every answer is checked against the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import aiohttp
import pytest

from bot.clock import FrozenClock
from bot.rig import Rig
from handlers.integrations.delivery import WEBHOOK_WORKER
from handlers.integrations.tables import WebhookEndpoint
from tests.api.support import Api, make_keys
from tests.integrations.receiver import Receiver
from tests.support.apps import RunningBot, rows, start_rig
from tests.support.settings import make_settings


class RigBot(RunningBot):
    """The API client of a Rig: real HTTP to its port."""

    def __init__(self, rig: Rig, http: aiohttp.ClientSession) -> None:
        self.client = cast(Any, http)
        self.services = rig.services


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


@pytest.fixture
async def rig(db_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    settings = make_settings(db_url, webhooks={"allow_private_targets": True}, api={"burst": 10_000})
    rig = await start_rig(settings, clock, rng=7)
    yield rig
    await rig.close()


@pytest.fixture
async def rig_api(rig: Rig) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(base_url=rig.base_url) as http:
        bot = RigBot(rig, http)
        yield Api(bot, await make_keys(bot))


async def settle(rig: Rig) -> None:
    await rig.drain()
    await rig.services.parts[WEBHOOK_WORKER].drain()


async def test_endpoint_round_trip_deliveries_and_replay(rig: Rig, rig_api: Api, receiver: Receiver) -> None:
    api = rig_api
    request = {"url": receiver.url, "events": ["customer.created", "customer.touched"]}
    assert (await api.post("/webhooks/endpoints", key="write", json=request)).status == 403
    assert (await api.get("/webhooks/endpoints", key="write")).status == 403
    created = await api.post("/webhooks/endpoints", json=request)
    assert created.status == 201 and created.body["secret"].startswith("whsec_")
    receiver.secret, eid = created.body["secret"], created.body["id"]
    assert created.body["events"] == ["customer.created", "customer.touched"] and created.body["enabled"]

    await rig.sim.add_friend("lulu", state="pkgcard")
    await settle(rig)
    assert receiver.types() == ["customer.created", "customer.touched"]

    one = await api.get(f"/webhooks/endpoints/{eid}")
    assert one.body["deliveries"] == {"delivered": 2} and "secret" not in one.body
    assert (await api.get(f"/webhooks/endpoints/{eid}", headers={"If-None-Match": one.headers["ETag"]})).status == 304
    listed = await api.get("/webhooks/endpoints")
    assert [e["id"] for e in listed.body["items"]] == [eid] and receiver.secret not in str(listed.body)

    first = await api.get(f"/webhooks/endpoints/{eid}/deliveries?limit=1")
    assert first.body["next_cursor"] is not None
    second = await api.get(f"/webhooks/endpoints/{eid}/deliveries?limit=1&cursor={first.body['next_cursor']}")
    newest, oldest = first.body["items"][0], second.body["items"][0]
    assert second.body["next_cursor"] is None and newest["id"] > oldest["id"]
    assert (oldest["event_type"], oldest["state"], oldest["webhook_id"]) == (
        "customer.created", "delivered", f"msg_{oldest['id']}"
    )  # fmt: skip
    assert [(a["attempt"], a["status_code"]) for a in oldest["log"]] == [(1, 204)]
    assert oldest["payload"] == receiver.events[0]

    replayed = await api.post(f"/webhooks/deliveries/{oldest['id']}/replay")
    assert replayed.status == 202 and replayed.body["state"] == "pending"
    await settle(rig)
    assert receiver.received[oldest["webhook_id"]] == 2 and len(receiver.events) == 2  # same id: deduped
    again = await api.get(f"/webhooks/endpoints/{eid}/deliveries?limit=5")
    assert [a["status_code"] for a in again.body["items"][-1]["log"]] == [204, 204]
    assert (await api.post("/webhooks/deliveries/424242/replay")).status == 404


async def test_disable_holds_deliveries_enable_sends_them(
    rig: Rig, rig_api: Api, receiver: Receiver, clock: FrozenClock
) -> None:
    api = rig_api
    created = await api.post("/webhooks/endpoints", json={"url": receiver.url, "events": "customer.created"})
    receiver.secret, eid = created.body["secret"], created.body["id"]
    receiver.mode = "down"
    await rig.sim.add_friend("lulu", state="pkgcard")
    await settle(rig)
    assert receiver.requests == 1 and receiver.events == []
    off = await api.call("PATCH", f"/webhooks/endpoints/{eid}", json={"enabled": False})
    assert off.status == 200 and not off.body["enabled"] and off.body["disabled_reason"] == "disabled by the operator"
    receiver.mode = "up"
    clock.advance(timedelta(hours=1))  # the retry is due, but the endpoint is off: it waits
    await settle(rig)
    assert receiver.requests == 1
    assert (await api.get(f"/webhooks/endpoints/{eid}")).body["deliveries"] == {"pending": 1}

    on = await api.call("PATCH", f"/webhooks/endpoints/{eid}", json={"enabled": True, "ordered": True})
    assert on.body["enabled"] and on.body["ordered"] and on.body["disabled_at"] is None
    await settle(rig)
    assert receiver.types() == ["customer.created"]

    bad = await api.call("PATCH", f"/webhooks/endpoints/{eid}", json={"events": ["no.such_event"]})
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "events"
    assert (await api.call("PATCH", f"/webhooks/endpoints/{eid}", json={"colour": "red"})).status == 400
    assert (await api.call("PATCH", f"/webhooks/endpoints/{eid}", json={"enabled": "yes"})).status == 400
    assert (await api.get(f"/webhooks/endpoints/{eid}")).body["events"] == ["customer.created"]
    changed = await api.call("PATCH", f"/webhooks/endpoints/{eid}", json={"events": ["customer.*", "order.recorded"]})
    assert changed.body["events"] == ["customer.*", "order.recorded"]

    removed = await api.delete(f"/webhooks/endpoints/{eid}")
    assert removed.status == 200 and removed.body == {"id": eid, "deliveries_removed": 1}
    assert (await api.get(f"/webhooks/endpoints/{eid}")).status == 404
    assert (await api.delete(f"/webhooks/endpoints/{eid}")).status == 404

    audit = (await api.get("/audit")).body["items"]
    assert [a["method"] for a in audit] == ["DELETE", "PATCH", "PATCH", "PATCH", "POST"]  # refused ones: none
    assert all(receiver.secret not in str(a) for a in audit)
    assert audit[1]["before"]["events"] == ["customer.created"]
    assert audit[1]["after"]["events"] == ["customer.*", "order.recorded"]


async def test_refused_targets_and_bad_requests_store_nothing(api: Api) -> None:
    """The default config: loopback and private targets refused (SSRF guard), metadata always."""
    for url, why in (
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.0.0.7/hook", "private"),
        ("http://169.254.169.254/latest", "metadata"),
        ("ftp://example.com/", "http"),
    ):
        refused = await api.post("/webhooks/endpoints", json={"url": url, "events": "*"})
        assert refused.status == 400 and refused.body["errors"][0]["field"] == "url" and why in refused.body["detail"]
    for body, field in (
        ({"url": "https://example.com/h", "events": []}, "events"),
        ({"url": "https://example.com/h", "events": "no.such_event"}, "events"),
        ({"events": "*"}, "url"),
        ({"url": "https://example.com/h", "events": "*", "ordered": "yes"}, "ordered"),
        ([], "body"),
    ):
        answer = await api.post("/webhooks/endpoints", json=body)
        assert answer.status == 400 and answer.body["errors"][0]["field"] == field
    assert await rows(api.bot, WebhookEndpoint) == []
    assert (await api.get("/webhooks/endpoints")).body == {"items": [], "next_cursor": None}
    assert (await api.get("/audit")).body["items"] == []
