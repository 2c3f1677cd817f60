"""Outbound webhooks on the real path: the bot (Rig: real app, real database, the simulated WeChat) and a
receiver that verifies every delivery with ``standardwebhooks`` as a brand's server would."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.actions import run_action
from bot.clock import FrozenClock
from bot.config import Settings
from bot.context import Context
from bot.db.models import Customer
from bot.dispatcher import Router
from bot.events import FriendAdded
from bot.feature import Feature
from bot.logs import RedactSecrets
from bot.rig import Rig
from handlers.integrations.delivery import RETRY_SCHEDULE, WEBHOOK_WORKER, DeliveryWorker, retry_delay
from handlers.integrations.endpoints import Created, EndpointError, add_endpoint, set_enabled
from handlers.integrations.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.integrations.receiver import Receiver
from tests.support.apps import start_rig
from tests.support.settings import make_settings


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


def hook_settings(db_url: str, **webhooks: object) -> Settings:
    return make_settings(db_url, webhooks={"allow_private_targets": True, **webhooks})


async def start(settings: Settings, clock: FrozenClock, *extra: Feature) -> Rig:
    return await start_rig(settings, clock, rng=7, extra=extra)


@pytest.fixture
async def rig(db_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start(hook_settings(db_url), clock)
    yield rig
    await rig.close()


def worker(rig: Rig) -> DeliveryWorker:
    return rig.services.parts[WEBHOOK_WORKER]


async def subscribe(rig: Rig, receiver: Receiver, events: str = "*", *, ordered: bool = False) -> Created:
    made = await run_action(
        rig.services,
        lambda ctx: add_endpoint(ctx.session, receiver.url, events, ordered=ordered, allow_private=True, now=ctx.now()),
    )
    receiver.secret = made.secret
    return made


async def settle(rig: Rig) -> None:
    await rig.drain()
    await worker(rig).drain()


async def deliveries(rig: Rig) -> list[WebhookDelivery]:
    async with rig.services.sessions() as s:
        return list((await s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


async def endpoint_row(rig: Rig, endpoint_id: int) -> WebhookEndpoint:
    async with rig.services.sessions() as s:
        row = await s.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return row


async def test_a_new_friend_is_delivered_signed(rig: Rig, receiver: Receiver) -> None:
    await subscribe(rig, receiver, "customer.created,customer.touched")
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await settle(rig)

    assert receiver.types() == ["customer.created", "customer.touched"]  # not customer.tags_changed
    async with rig.services.sessions() as s:
        customer = (await s.scalars(select(Customer).where(Customer.external_userid == added.external_userid))).one()
    created, touched = receiver.events
    assert created["data"]["customer_id"] == customer.id
    assert created["data"]["customer"] == {
        "id": customer.id,
        "external_userid": added.external_userid,
        "openid": None,
        "unionid": None,
    }
    assert touched["data"]["channel"] == "pkgcard" and touched["data"]["first"] is True
    assert created["timestamp"].startswith("2026-11-23T10:00")
    rows = await deliveries(rig)
    assert [r.state for r in rows] == ["delivered", "delivered"]
    assert receiver.ids == [f"msg_{r.id}" for r in rows]
    assert receiver.refused == 0
    async with rig.services.sessions() as s:
        attempts = list((await s.scalars(select(WebhookAttempt))).all())
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [(1, 204, None), (1, 204, None)]
    assert all(a.latency_ms >= 0 for a in attempts)


async def test_receiver_down_for_an_hour_gets_everything_once(rig: Rig, receiver: Receiver, clock: FrozenClock) -> None:
    await subscribe(rig, receiver)
    receiver.mode = "down"
    for n in range(3):
        await rig.sim.add_friend("lulu", state="pkgcard", external_userid=f"wmDown{n:04d}")
    await settle(rig)
    queued = await deliveries(rig)
    assert len(queued) == 9  # created, touched, tags_changed × 3
    for _ in range(12):  # an hour, in 5-minute steps: every retry fails
        clock.advance(timedelta(minutes=5))
        await worker(rig).drain()
    assert receiver.events == [] and receiver.requests >= 9 * 5
    assert {r.state for r in await deliveries(rig)} == {"pending"}
    endpoint = await endpoint_row(rig, queued[0].endpoint_id)
    assert endpoint.enabled and endpoint.failing_since is not None

    receiver.mode = "up"
    for _ in range(24):  # the next retries (the schedule's hourly step) find it up
        clock.advance(timedelta(minutes=5))
        await worker(rig).drain()
    rows = await deliveries(rig)
    assert {r.state for r in rows} == {"delivered"}
    assert sorted(receiver.received) == sorted(f"msg_{r.id}" for r in rows)
    assert set(receiver.received.values()) == {1}  # none twice
    assert all(r.attempts >= 6 for r in rows)
    assert (await endpoint_row(rig, queued[0].endpoint_id)).failing_since is None


async def test_a_rolled_back_change_is_never_delivered(db_url: str, clock: FrozenClock, receiver: Receiver) -> None:
    broken = Router("broken")

    @broken.on(FriendAdded)
    async def fail(event: FriendAdded, ctx: Context) -> None:
        raise RuntimeError("a later handler broke")

    rig = await start(hook_settings(db_url), clock, Feature("broken", routers=(broken,)))
    try:
        await subscribe(rig, receiver)
        await rig.sim.add_friend("lulu", state="pkgcard")
        await rig.services.dispatcher.drain(10)
        await worker(rig).drain()
        assert await deliveries(rig) == []
        assert receiver.requests == 0
    finally:
        await rig.close()


async def test_deliveries_survive_a_process_that_stopped_before_sending(
    db_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    """The first process commits the events (one of its deliveries already claimed, mid-send) and is gone
    before sending; a new process on the same database delivers them all."""
    first = await start(hook_settings(db_url), clock)
    try:
        await worker(first).stop()  # nothing is sent by this process
        await subscribe(first, receiver, "customer.created,customer.touched")
        await first.sim.add_friend("lulu", state="pkgcard")
        await first.drain()
        rows = await deliveries(first)
        assert [r.state for r in rows] == ["pending", "pending"]
        async with first.services.sessions() as s, s.begin():
            await s.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == rows[0].id)
                .values(state="sending", owner=first.services.instances.id, attempts=1)
            )
    finally:
        await first.close()
    second = await start(hook_settings(db_url), clock)
    try:
        await worker(second).drain()
        assert receiver.types() == ["customer.created", "customer.touched"]
        assert {r.state for r in await deliveries(second)} == {"delivered"}
    finally:
        await second.close()


async def test_410_disables_the_endpoint_and_enable_resumes(
    rig: Rig, receiver: Receiver, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    made = await subscribe(rig, receiver, "customer.created")
    receiver.mode = "gone"
    with caplog.at_level(logging.ERROR):
        await rig.sim.add_friend("lulu", state="pkgcard")
        await settle(rig)
    endpoint = await endpoint_row(rig, made.id)
    assert not endpoint.enabled and "410" in (endpoint.disabled_reason or "")
    assert "webhook.endpoint_disabled" in caplog.text
    clock.advance(timedelta(hours=1))
    await worker(rig).drain()
    assert receiver.requests == 1  # a disabled endpoint is not called
    await rig.sim.add_friend("axin", state="pkgcard", external_userid="wmAfterGone0001")
    await settle(rig)
    assert len(await deliveries(rig)) == 1  # nor queued for

    receiver.mode = "up"
    await run_action(rig.services, lambda ctx: set_enabled(ctx.session, made.id, True, ctx.now()))
    await worker(rig).drain()
    assert receiver.types() == ["customer.created"]


async def test_an_endpoint_failing_for_three_days_is_disabled(
    rig: Rig, receiver: Receiver, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    made = await subscribe(rig, receiver, "customer.created")
    receiver.mode = "down"
    await rig.sim.add_friend("lulu", state="pkgcard")
    await settle(rig)
    with caplog.at_level(logging.ERROR):
        for _ in range(4 * 24):
            clock.advance(timedelta(hours=1))
            await worker(rig).drain()
    endpoint = await endpoint_row(rig, made.id)
    assert not endpoint.enabled and "3 days" in (endpoint.disabled_reason or "")
    assert f"webhook endpoint {made.id} disabled" in caplog.text
    (row,) = await deliveries(rig)
    assert row.state == "pending"  # kept: enabling the endpoint sends it


async def test_an_ordered_endpoint_keeps_each_customers_order(rig: Rig, receiver: Receiver, clock: FrozenClock) -> None:
    await subscribe(rig, receiver, "customer.*", ordered=True)
    receiver.fail_next = 1  # the customer's first event fails once
    await rig.sim.add_friend("lulu", state="pkgcard")
    await settle(rig)
    assert receiver.events == []  # the later events wait for the first
    clock.advance(timedelta(seconds=10))
    await worker(rig).drain()
    assert receiver.types() == ["customer.created", "customer.touched", "customer.tags_changed"]
    assert receiver.ids == sorted(receiver.ids, key=lambda i: int(i[4:]))


async def test_private_targets_are_refused_at_add_and_at_delivery(
    db_url: str, clock: FrozenClock, receiver: Receiver
) -> None:
    rig = await start(make_settings(db_url), clock)  # allow_private_targets = false
    try:

        async def add(url: str, allow: bool = False) -> Created:
            return await run_action(
                rig.services,
                lambda ctx: add_endpoint(ctx.session, url, "*", ordered=False, allow_private=allow, now=ctx.now()),
            )

        for url in (
            receiver.url,
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[fd12::1]/hook",
            "http://169.254.1.1/hook",
            "http://224.0.0.1/hook",
            "ftp://example.com/hook",
            "not a url",
        ):
            with pytest.raises(EndpointError):
                await add(url)
        for url in ("http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/"):
            with pytest.raises(EndpointError, match="metadata"):
                await add(url, allow=True)  # never, even when private targets are allowed
        with pytest.raises(EndpointError, match="unknown event"):
            await run_action(
                rig.services,
                lambda ctx: add_endpoint(
                    ctx.session, receiver.url, "customer.nope", ordered=False, allow_private=True, now=ctx.now()
                ),
            )

        # added while allowed (or DNS pointed elsewhere then): refused when delivering, literal and by name
        literal = await add(receiver.url, allow=True)
        named = await add(receiver.url.replace("127.0.0.1", "localhost"), allow=True)
        receiver.secret = literal.secret
        await rig.sim.add_friend("lulu", state="pkgcard")
        await rig.drain()
        await worker(rig).drain()
        assert receiver.requests == 0
        async with rig.services.sessions() as s:
            errors = {(a.status_code, (a.error or "")[:8]) for a in (await s.scalars(select(WebhookAttempt))).all()}
            assert errors == {(None, "refused:")}
            n = await s.scalar(select(func.count()).select_from(WebhookDelivery))
        assert n == 6 and literal.id != named.id
    finally:
        await rig.close()


async def test_the_secret_is_never_shown(rig: Rig, receiver: Receiver) -> None:
    made = await subscribe(rig, receiver, "customer.created")
    assert made.secret not in repr(made)
    assert made.secret.startswith("whsec_") and len(made.secret) > 40
    endpoint = await endpoint_row(rig, made.id)
    assert made.secret not in repr(endpoint) and receiver.url not in repr(endpoint)
    line = f"oops {made.secret} and {made.secret.removeprefix('whsec_')}"
    assert made.secret.removeprefix("whsec_") not in RedactSecrets([]).scrub(line)


def test_retries_span_more_than_a_day() -> None:
    rng = random.Random(1)
    delays = [retry_delay(n, rng) for n in range(1, 12)]
    assert delays[0] == pytest.approx(5, rel=0.11) and delays[-1] == pytest.approx(8 * 3600, rel=0.11)
    assert sum(delays) >= 24 * 3600
    assert list(RETRY_SCHEDULE) == sorted(RETRY_SCHEDULE)
