"""Identity merge: every fact of the dropped row moves to the survivor; clashes resolve to the survivor."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import FrozenClock
from bot.config import Settings
from bot.context import Context
from bot.db.engine import sessionmaker
from bot.db.models import Customer
from handlers.customers.identity import link_unionid
from handlers.growth.tables import CustomerTag
from handlers.interactions.tables import Checkin, PointsBalance, PointsEntry
from handlers.orders.tables import Order
from handlers.sop.tables import DripEnrolment, DripStepRun


async def test_merge_moves_everything_and_keeps_sums_right(
    engine: AsyncEngine, settings: Settings, clock: FrozenClock
) -> None:
    now = clock.now()
    async with sessionmaker(engine)() as s, s.begin():
        old = Customer(openid="oA", unionid="u1", created_at=now, updated_at=now, purchase_count=1,
                       total_spent_cents=2900, last_purchase_at=now)  # fmt: skip
        new = Customer(external_userid="wmB", created_at=now, updated_at=now, purchase_count=2,
                       total_spent_cents=5000, last_purchase_at=now + timedelta(days=1))  # fmt: skip
        s.add_all([old, new])
        await s.flush()
        for cid, delta, ref in ((old.id, 5, "checkin:2026-11-23"), (new.id, 5, "checkin:2026-11-23"),
                                (new.id, 7, "checkin:2026-11-24")):  # fmt: skip
            s.add(PointsEntry(customer_id=cid, delta=delta, reason="checkin", ref=ref, created_at=now))
        s.add_all([PointsBalance(customer_id=old.id, balance=5, updated_at=now),
                   PointsBalance(customer_id=new.id, balance=12, updated_at=now)])  # fmt: skip
        for cid in (old.id, new.id):
            s.add(Checkin(customer_id=cid, local_day="2026-11-23", checked_at=now, streak=1, points=5, source="mp"))
            s.add(CustomerTag(customer_id=cid, tag="渠道/包裹卡", source="x", created_at=now))
            enrol = DripEnrolment(customer_id=cid, drip_id="mp_48h", anchor_at=now, state="active")
            s.add(enrol)
            await s.flush()
            s.add(DripStepRun(enrolment_id=enrol.id, customer_id=cid, drip_id="mp_48h", step_id="1", due_at=now))
        s.add(Order(order_id="SO-1", customer_id=new.id, status="paid", amount_cents=5000, paid_at=now,
                    received_at=now, payload={}))  # fmt: skip
        await s.flush()
        ctx = Context(s, settings, clock, random.Random(1), None)
        survivor = await link_unionid(ctx, new, "u1")
        assert survivor.id == old.id
        assert (survivor.openid, survivor.external_userid, survivor.unionid) == ("oA", "wmB", "u1")
        assert (survivor.purchase_count, survivor.total_spent_cents) == (3, 7900)
        assert survivor.last_purchase_at == now + timedelta(days=1)

    async with sessionmaker(engine)() as s:
        assert await s.scalar(select(func.count()).select_from(Customer)) == 1
        entries = (await s.scalars(select(PointsEntry.ref).where(PointsEntry.customer_id == old.id))).all()
        assert sorted(entries) == ["checkin:2026-11-23", "checkin:2026-11-24"]
        balance = await s.get(PointsBalance, old.id)
        assert balance is not None and balance.balance == 12  # == sum of the ledger
        assert await s.scalar(select(func.count()).select_from(Checkin)) == 1
        assert await s.scalar(select(func.count()).select_from(CustomerTag)) == 1
        assert await s.scalar(select(func.count()).select_from(DripEnrolment)) == 1
        assert await s.scalar(select(func.count()).select_from(DripStepRun)) == 1
        order = (await s.scalars(select(Order))).one()
        assert order.customer_id == old.id
