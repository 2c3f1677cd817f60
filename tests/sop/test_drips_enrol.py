"""``handlers.sop.drip_enrol.enrol`` against the real database (SQLite and PostgreSQL): one enrolment per
(customer, drip) ever, every step written with its due time in the configured timezone, a customer who
already meets a stop condition recorded as stopped without steps, and "a step is due now" reported to the
transaction's runner (which wakes the drip worker after the commit)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.context import Context
from bot.db.models import Customer
from bot.rig import Rig
from handlers.sop.content import sop_of
from handlers.sop.content.model import StopKind
from handlers.sop.drip_enrol import enrol, stop_drips
from handlers.sop.tables import DripEnrolment, DripStepRun
from tests.sop.drips import MORNING, drip_rig, enrolments, hours, steps_of  # noqa: F401  ("rig")
from tests.support.apps import rows


async def enrol_once(rig: Rig, customer_id: int, drip_id: str, anchor: datetime) -> tuple[bool, bool]:
    """One transaction, as a handler runs it: (enrolled, a step is due now)."""
    s = rig.services
    assert s.sessions is not None
    drip = sop_of(s.content).drip(drip_id)
    assert drip is not None
    async with s.sessions() as session, session.begin():
        ctx = Context(session, s.settings, s.clock, s.rng, None, s)
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        return await enrol(ctx, customer, drip, anchor), bool(ctx.after_commit_hooks)


async def new_customer(rig: Rig, openid: str, **fields: object) -> int:
    async with rig.services.sessions() as session, session.begin():
        customer = Customer(openid=openid, created_at=MORNING, updated_at=MORNING, mp_follower=True, **fields)
        session.add(customer)
        await session.flush()
        return customer.id


async def test_enrol_writes_the_enrolment_and_every_step_once(rig: Rig, clock: FrozenClock) -> None:
    cid = await new_customer(rig, "o-enrol")
    assert await enrol_once(rig, cid, "mp_48h", MORNING) == (True, True)  # step 1 ("0m") is due now
    assert await enrol_once(rig, cid, "mp_48h", MORNING + hours(1)) == (False, False)  # never twice
    [enrolment] = await enrolments(rig, "mp_48h")
    assert (enrolment.customer_id, enrolment.state, enrolment.anchor_at) == (cid, "active", MORNING)
    assert (enrolment.stop_reason, enrolment.ended_at, enrolment.receipt_id) == (None, None, None)
    steps = await steps_of(rig, "mp_48h")
    assert [(s.enrolment_id, s.customer_id, s.step_id, s.state) for s in steps] == [
        (enrolment.id, cid, "1", "pending"),
        (enrolment.id, cid, "2", "pending"),
        (enrolment.id, cid, "3", "pending"),
    ]
    assert [s.due_at for s in steps] == [MORNING, MORNING + hours(3), MORNING + hours(6)]
    assert all(s.reason is None and s.claimed_until is None and s.finished_at is None for s in steps)


async def test_a_second_trigger_in_the_same_transaction_does_not_enrol_again(rig: Rig) -> None:
    """A receipt can start the same drip twice (an arrival drip and a channel tag's drip chain): the second
    ``enrol`` sees the first one's row, uncommitted, and its steps are not written twice."""
    cid = await new_customer(rig, "o-twice")
    s = rig.services
    assert s.sessions is not None
    drip = sop_of(s.content).drip("mp_48h")
    assert drip is not None
    async with s.sessions() as session, session.begin():
        ctx = Context(session, s.settings, s.clock, s.rng, None, s)
        customer = await session.get(Customer, cid)
        assert customer is not None
        assert [await enrol(ctx, customer, drip, MORNING), await enrol(ctx, customer, drip, MORNING)] == [True, False]
    assert len(await enrolments(rig, "mp_48h")) == 1 and len(await steps_of(rig, "mp_48h")) == 3


async def test_the_steps_held_for_the_commit_are_seen_by_the_rest_of_the_transaction(rig: Rig) -> None:
    """Steps are written in one executemany before the transaction's next statement: a stop in the same
    transaction (a receipt that enrols, then stops) cancels them, a count sees them."""
    cid = await new_customer(rig, "o-stop")
    s = rig.services
    assert s.sessions is not None
    drips = [sop_of(s.content).drip("mp_48h"), sop_of(s.content).drip("pkgcard_followup")]
    async with s.sessions() as session, session.begin():
        ctx = Context(session, s.settings, s.clock, s.rng, None, s)
        customer = await session.get(Customer, cid)
        assert customer is not None
        for drip in drips:
            assert drip is not None and await enrol(ctx, customer, drip, MORNING)
        assert await session.scalar(select(func.count()).select_from(DripStepRun)) == 5
        assert await stop_drips(ctx, cid, StopKind.PURCHASED) == ["mp_48h", "pkgcard_followup"]
    steps = await rows(rig, DripStepRun)
    assert [(st.drip_id, st.state, st.reason) for st in steps] == [
        ("mp_48h", "cancelled", "drip stopped: purchased")
    ] * 3 + [("pkgcard_followup", "cancelled", "drip stopped: purchased")] * 2


async def test_a_rolled_back_enrolment_leaves_nothing_behind(rig: Rig) -> None:
    cid = await new_customer(rig, "o-rollback")
    s = rig.services
    assert s.sessions is not None
    drip = sop_of(s.content).drip("mp_48h")
    assert drip is not None
    async with s.sessions() as session:
        with pytest.raises(RuntimeError):
            async with session.begin():
                customer = await session.get(Customer, cid)
                assert customer is not None
                assert await enrol(Context(session, s.settings, s.clock, s.rng, None, s), customer, drip, MORNING)
                raise RuntimeError("the handler failed after enrolling")
        async with session.begin():  # the same session again: the held steps went with the rollback
            customer = await session.get(Customer, cid)
            assert customer is not None
            assert await enrol(Context(session, s.settings, s.clock, s.rng, None, s), customer, drip, MORNING)
    assert len(await enrolments(rig, "mp_48h")) == 1
    assert [st.step_id for st in await steps_of(rig, "mp_48h")] == ["1", "2", "3"]


async def test_step_times_follow_the_local_calendar(rig: Rig, clock: FrozenClock) -> None:
    """00:30 on Tuesday in Shanghai is still Monday in UTC: "next_day 10:00" is Wednesday 10:00 local."""
    anchor = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # Tue 2026-11-24 00:30 Asia/Shanghai
    clock.set(anchor)
    cid = await new_customer(rig, "o-late")
    assert await enrol_once(rig, cid, "pkgcard_followup", anchor) == (True, False)  # nothing due yet
    [gift, hero] = await steps_of(rig, "pkgcard_followup")
    assert gift.due_at == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # Wed 10:00 local
    assert hero.due_at == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # day 3 20:00 local = Fri 20:00


async def test_a_customer_who_already_bought_is_recorded_stopped_without_steps(rig: Rig) -> None:
    cid = await new_customer(rig, "o-buyer", purchase_count=1)
    assert await enrol_once(rig, cid, "mp_48h", MORNING) == (True, False)
    assert await enrol_once(rig, cid, "mp_48h", MORNING) == (False, False)
    [enrolment] = await enrolments(rig, "mp_48h")
    assert (enrolment.state, enrolment.stop_reason, enrolment.ended_at) == ("stopped", "already purchased", MORNING)
    assert await rows(rig, DripStepRun) == []
    # the trigger itself is not a stop: an order_paid drip with a "purchased"-free stop list still starts
    assert await enrol_once(rig, cid, "first_order_care", MORNING) == (True, False)
    assert [e.state for e in await rows(rig, DripEnrolment, DripEnrolment.drip_id == "first_order_care")] == ["active"]
