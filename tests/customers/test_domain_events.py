"""Domain events: a feature added to the list hears what the others did, inside their transaction.

The feature here is the example of docs/architecture.md: "log a line on every new customer" — one
Router, one Feature, appended to ``handlers.features()``; nothing else changes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.context import Context
from bot.db.models import Customer, Receipt
from bot.dispatcher import Router
from bot.events import FriendAdded
from bot.feature import Feature
from bot.rig import Rig
from handlers.customers.events import CustomerCreated
from handlers.growth.events import CustomerTouched, TagsChanged
from handlers.growth.tables import CustomerTag
from tests.support.apps import start_rig

log = logging.getLogger("tests.audit")


def audit_feature(seen: list[object]) -> Feature:
    audit = Router("audit")

    @audit.on(CustomerCreated)
    async def log_new_customer(event: CustomerCreated, ctx: Context) -> None:
        log.info("new customer %s (%s)", event.customer_id, event.identity)
        seen.append(event)
        # written in the transaction that created the customer: both commit, or neither
        ctx.session.add(
            CustomerTag(customer_id=event.customer_id, tag="audit/new", source="audit", created_at=ctx.now())
        )

    @audit.on(CustomerTouched, TagsChanged)
    async def remember(event: CustomerTouched | TagsChanged, ctx: Context) -> None:
        seen.append(event)

    return Feature("audit", routers=(audit,))


@pytest.fixture
async def seen() -> list[object]:
    return []


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock, seen: list[object]) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=7, extra=[audit_feature(seen)])
    yield rig
    await rig.close()


async def _count(rig: Rig, *where: object) -> int:
    async with rig.services.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(CustomerTag).where(*where)) or 0)


async def test_a_new_customer_is_announced_once_inside_the_transaction(
    rig: Rig, seen: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tests.audit")
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await rig.drain()
    async with rig.services.sessions() as s:
        customer = (await s.scalars(select(Customer).where(Customer.external_userid == added.external_userid))).one()
    created = [e for e in seen if isinstance(e, CustomerCreated)]
    assert created == [CustomerCreated(customer.id, "external_userid", added.external_userid or "")]
    assert f"new customer {customer.id} (external_userid)" in caplog.text
    assert await _count(rig, CustomerTag.customer_id == customer.id, CustomerTag.tag == "audit/new") == 1
    touched = [e for e in seen if isinstance(e, CustomerTouched)]
    assert [(t.customer_id, t.channel, t.action, t.first) for t in touched] == [
        (customer.id, "pkgcard", "friend_added", True)
    ]
    assert any(isinstance(e, TagsChanged) and e.customer_id == customer.id for e in seen)

    # the same person again (another staff member): a touch, not a new customer
    seen.clear()
    await rig.sim.add_friend("axin", state="pkgcard", external_userid=added.external_userid)
    await rig.drain()
    assert not [e for e in seen if isinstance(e, CustomerCreated)]


async def test_a_rolled_back_change_announces_nothing_that_stays(
    settings: Settings, clock: FrozenClock, seen: list[object]
) -> None:
    """A handler after the announcement fails: the customer, and what the listener wrote, roll back together."""
    broken = Router("broken")

    @broken.on(FriendAdded)
    async def fail(event: FriendAdded, ctx: Context) -> None:
        raise RuntimeError("a later handler broke")

    rig = await start_rig(settings, clock, rng=7, extra=[audit_feature(seen), Feature("broken", routers=(broken,))])
    try:
        await rig.sim.add_friend("lulu", state="pkgcard")
        await rig.services.dispatcher.drain(10)
        async with rig.services.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Customer)) == 0
            assert await s.scalar(select(Receipt.error).where(Receipt.kind == "friend_added"))
        assert await _count(rig, CustomerTag.tag == "audit/new") == 0
        assert [e for e in seen if isinstance(e, CustomerCreated)]  # heard, then rolled back with the rest
    finally:
        await rig.close()
