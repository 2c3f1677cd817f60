"""Helpers for drip journey tests: a rig with the drip worker beside it, ticks on the frozen clock.

The fixtures ``rig`` (started at :data:`MORNING`) and ``worker`` are defined here as :func:`drip_rig` and
:func:`drip_worker`; a test module uses them by importing those names::

    from tests.sop.drips import drip_rig, drip_worker  # noqa: F401  (fixtures "rig", "worker")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer
from bot.events import OrderPaid
from bot.rig import Rig
from handlers.sop.drip_steps import run_step
from handlers.sop.drip_worker import DRIP_WORKER, DripWorker
from handlers.sop.tables import ContactLedger, DripEnrolment, DripStepRun
from tests.support.apps import rows, start_rig

MORNING = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Asia/Shanghai
MINUTE = timedelta(minutes=1)


@pytest.fixture(name="rig")
async def drip_rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    """The app and the simulator on the frozen clock, set to :data:`MORNING`, with the app's own drip worker
    stopped: these tests run the steps by hand (:func:`tick`) at the moments they choose. Running, it would
    be woken by every enrolment with a step due now and race the test (see ``test_drips_wake.py``)."""
    clock.set(MORNING)
    rig = await start_rig(settings, clock, rng=7)
    await rig.services.parts[DRIP_WORKER].stop()
    yield rig
    await rig.close()


@pytest.fixture(name="worker")
def drip_worker(rig: Rig) -> DripWorker:
    return worker_for(rig)


def worker_for(rig: Rig) -> DripWorker:
    s = rig.services
    assert s.sessions is not None and s.outbox is not None
    return DripWorker(s.sessions, s.settings, s.clock, s.rng, s, run_step, s.outbox.notify)


async def tick(rig: Rig, worker: DripWorker) -> int:
    """Run due steps and everything they queued, at the current (frozen) time."""
    await rig.drain()
    ran = 0
    while (n := await worker.run_due()) > 0:
        ran += n
    await rig.drain()
    return ran


async def at(rig: Rig, worker: DripWorker, clock: FrozenClock, when: datetime) -> None:
    clock.set(when)
    await tick(rig, worker)


async def pay(rig: Rig, order_id: str, *, openid: str | None = None, external_userid: str | None = None) -> None:
    """An ``OrderPaid`` through the inbox (claim, then dispatch), as the orders webhook does."""
    s = rig.services
    assert s.writer is not None and s.dispatcher is not None
    event = OrderPaid(
        platform="shop", account="shop", create_time=int(s.clock.now().timestamp()),
        raw={"order_id": order_id, "status": "paid"}, order_id=order_id, amount_cents=5900, currency="CNY",
        unionid=None, openid=openid, external_userid=external_userid,
    )  # fmt: skip
    claim = await s.writer.claim(event)
    assert claim.receipt_id is not None
    s.dispatcher.submit(claim.receipt_id, event)
    await rig.drain()


def drip_sends(rig: Rig, openid: str, marker: str = "from=drip_mp_48h") -> list[tuple[object, str]]:
    """(time, text) of the drip's customer-service messages the follower received."""
    return [
        (d.at, d.body["text"]["content"])
        for d in rig.state.delivered
        if d.api == "message/custom/send" and d.to == openid and marker in d.body.get("text", {}).get("content", "")
    ]


async def customer_by(rig: Rig, column: str, value: str) -> Customer:
    [found] = await rows(rig, Customer, getattr(Customer, column) == value)
    assert isinstance(found, Customer)
    return found


async def steps_of(rig: Rig, drip_id: str) -> list[DripStepRun]:
    return await rows(rig, DripStepRun, DripStepRun.drip_id == drip_id)


async def enrolments(rig: Rig, drip_id: str) -> list[DripEnrolment]:
    return await rows(rig, DripEnrolment, DripEnrolment.drip_id == drip_id)


async def ledger(rig: Rig, customer_id: int) -> list[ContactLedger]:
    return await rows(rig, ContactLedger, ContactLedger.customer_id == customer_id)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
