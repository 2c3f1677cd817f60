"""What the staff feature shows: transfers by batch and state, those still pending, group transfers, the
commands' audit trail and the latest loss alerts — read by ``siyu-bot staff transfers|audit`` and the console."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.staff.tables import LossAlert, StaffAudit, StaffGroupTransfer, StaffTransfer

OPEN = ("requested", "waiting")


async def transfer_counts(session: AsyncSession) -> list[tuple[Any, ...]]:
    """(batch, kind, from, to, state, customers) per batch and state, oldest batch first."""
    T = StaffTransfer
    columns = (T.batch, T.kind, T.from_userid, T.to_userid, T.state)
    q = select(*columns, func.count()).group_by(*columns).order_by(T.batch, T.state)
    return [tuple(r) for r in (await session.execute(q)).all()]


async def pending_transfers(session: AsyncSession, limit: int | None = None) -> list[StaffTransfer]:
    q = select(StaffTransfer).where(StaffTransfer.state.in_(OPEN)).order_by(StaffTransfer.id)
    return list((await session.scalars(q.limit(limit) if limit else q)).all())


async def group_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    q = select(StaffGroupTransfer.batch, StaffGroupTransfer.state, func.count()).group_by(
        StaffGroupTransfer.batch, StaffGroupTransfer.state
    )
    return {(b, s): int(n) for b, s, n in (await session.execute(q)).all()}


async def audit_trail(session: AsyncSession, limit: int | None = None) -> list[StaffAudit]:
    q = select(StaffAudit).order_by(StaffAudit.id.desc() if limit else StaffAudit.id)
    return list((await session.scalars(q.limit(limit) if limit else q)).all())


async def latest_loss_alerts(session: AsyncSession, limit: int = 50) -> list[LossAlert]:
    q = select(LossAlert).order_by(LossAlert.lost_at.desc(), LossAlert.id.desc()).limit(limit)
    return list((await session.scalars(q)).all())
