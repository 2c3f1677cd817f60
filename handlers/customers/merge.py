"""Moving everything that belongs to one customer row onto another (identity merge).

When a unionid shows two rows are one person, every fact about the dropped row moves to the survivor.
Where a unique constraint would be broken (both rows checked in on the same day, both hold a ticket
with the same ref, both are enrolled in the same drip …), the survivor's row wins and the dropped one is
deleted first; totals that are sums (points, purchases) are recomputed or added.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, UniqueConstraint, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Base, Customer
from handlers.interactions.tables import PointsBalance, PointsEntry, Referral
from handlers.orders.payload import MAX_TOTAL_SPENT_CENTS
from handlers.sop.tables import DripEnrolment, DripStepRun


def customer_tables() -> tuple[list[tuple[Any, tuple[str, ...]]], list[Any]]:
    """Every mapped table with a ``customer_id`` pointing at ``customers``, read from the metadata: those
    where ``customer_id`` is unique together with other columns (the survivor wins on a clash) and the
    plain ones. A row keyed by the customer alone (a referral code, a points balance) moves only when the
    survivor has none; balances are recomputed afterwards."""
    unique: list[tuple[Any, tuple[str, ...]]] = []
    plain: list[Any] = []
    for mapper in sorted(Base.registry.mappers, key=lambda m: str(m.local_table)):
        table: Table = mapper.local_table  # type: ignore[assignment]
        column = table.c.get("customer_id")
        if column is None or table.name == "customers":
            continue
        keys = [tuple(table.primary_key.columns)] if column.primary_key else []
        keys += [tuple(c.columns) for c in table.constraints if isinstance(c, UniqueConstraint)]
        keys += [tuple(i.columns) for i in table.indexes if i.unique]
        together = [tuple(c.name for c in key if c.name != "customer_id") for key in keys if column in key]
        together += [()] if column.unique else []
        if together:
            unique.extend((mapper.class_, cols) for cols in together)
        else:
            plain.append(mapper.class_)
    return unique, plain


async def move_dependents(session: AsyncSession, old: int, new: int) -> None:
    # steps of a drip both rows are enrolled in go with the dropped enrolment (not relying on FK cascades)
    both = select(DripEnrolment.drip_id).where(DripEnrolment.customer_id == new)
    dropped = select(DripEnrolment.id).where(DripEnrolment.customer_id == old, DripEnrolment.drip_id.in_(both))
    await session.execute(delete(DripStepRun).where(DripStepRun.enrolment_id.in_(dropped)))
    unique, plain = customer_tables()
    for model, columns in unique:
        await _drop_clashes(session, model, columns, old, new)
    for model in {m for m, _ in unique}:
        await session.execute(update(model).where(model.customer_id == old).values(customer_id=new))
    for model in plain:
        await session.execute(update(model).where(model.customer_id == old).values(customer_id=new))
    await _move_referrals(session, old, new)
    await _recompute_points(session, old, new)


async def _drop_clashes(session: AsyncSession, model: Any, columns: tuple[str, ...], old: int, new: int) -> None:
    survivor = model.__table__.alias("survivor")
    clash = select(survivor.c.customer_id).where(
        survivor.c.customer_id == new,
        *(survivor.c[c] == getattr(model, c) for c in columns),
        *(survivor.c[c].is_not(None) for c in columns),
    )
    await session.execute(delete(model).where(and_(model.customer_id == old, clash.exists())))


async def _move_referrals(session: AsyncSession, old: int, new: int) -> None:
    has_own = select(Referral.id).where(Referral.invitee_id == new).exists()
    await session.execute(delete(Referral).where(Referral.invitee_id == old, has_own))
    await session.execute(update(Referral).where(Referral.invitee_id == old).values(invitee_id=new))
    await session.execute(update(Referral).where(Referral.inviter_id == old).values(inviter_id=new))


async def _recompute_points(session: AsyncSession, old: int, new: int) -> None:
    """The balance always equals the sum of the ledger: recompute it after the ledger moved."""
    old_balance = await session.get(PointsBalance, old)
    if old_balance is None and await session.get(PointsBalance, new) is None:
        return
    total = await session.scalar(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(PointsEntry.customer_id == new)
    )
    balance = await session.get(PointsBalance, new)
    now = old_balance.updated_at if old_balance is not None else balance.updated_at if balance else None
    if old_balance is not None:
        await session.delete(old_balance)
        await session.flush()
    if balance is None:
        assert now is not None
        session.add(PointsBalance(customer_id=new, balance=int(total or 0), updated_at=now))
    else:
        balance.balance = int(total or 0)


def add_purchases(keep: Customer, drop: Customer) -> None:
    keep.purchase_count = (keep.purchase_count or 0) + (drop.purchase_count or 0)
    total = (keep.total_spent_cents or 0) + (drop.total_spent_cents or 0)
    keep.total_spent_cents = min(total, MAX_TOTAL_SPENT_CENTS)  # saturates, as orders do
    if drop.last_purchase_at is not None and (
        keep.last_purchase_at is None or drop.last_purchase_at > keep.last_purchase_at
    ):
        keep.last_purchase_at = drop.last_purchase_at
