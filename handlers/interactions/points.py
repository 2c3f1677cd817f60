"""Points: a ledger with a running balance that always equals the sum of the ledger.

API for every channel (OA chat, kf, H5, referral), all inside the caller's transaction (``ctx.session``):

- ``await award(ctx, customer_id, delta, reason, ref) -> bool`` — credit (or debit, for corrections)
  ``delta``; False when ``ref`` was already recorded for this customer (idempotent: ``checkin:2026-11-23``,
  ``draw:unbox:17``, ``referral:42``).
- ``await spend(ctx, customer_id, cost, reason, ref) -> bool`` — take ``cost`` only if the balance covers it
  (one conditional UPDATE); False when it does not, or when ``ref`` was already spent.
- ``await balance(ctx, customer_id) -> int``.

The ledger row and the balance change are written in the same transaction, so a rollback undoes both;
the balance moves only through atomic ``balance = balance ± n`` statements, never read-modify-write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.context import Context
from bot.db.upsert import insert_ignore
from handlers.interactions.tables import PointsBalance, PointsEntry


async def award(ctx: Context, customer_id: int, delta: int, reason: str, ref: str) -> bool:
    """Record ``delta`` under ``ref`` and move the balance by it; False (nothing changed) if ``ref`` exists."""
    now = ctx.now()
    entry = {"customer_id": customer_id, "delta": delta, "reason": reason, "ref": ref, "created_at": now}
    if not await insert_ignore(ctx.session, PointsEntry, entry, ["customer_id", "ref"]):
        return False
    await _add_to_balance(ctx, customer_id, delta)
    return True


async def spend(ctx: Context, customer_id: int, cost: int, reason: str, ref: str) -> bool:
    """Take ``cost`` points if the balance covers it; the ledger row is written only when it did."""
    if cost <= 0:
        raise ValueError("cost must be positive")
    now = ctx.now()
    taken = await ctx.session.execute(
        update(PointsBalance)
        .where(PointsBalance.customer_id == customer_id, PointsBalance.balance >= cost)
        .values(balance=PointsBalance.balance - cost, updated_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    entry = {"customer_id": customer_id, "delta": -cost, "reason": reason, "ref": ref, "created_at": now}
    if await insert_ignore(ctx.session, PointsEntry, entry, ["customer_id", "ref"]):
        return True
    # ``ref`` was spent before (a retried request): give the points back, same transaction.
    await ctx.session.execute(
        update(PointsBalance)
        .where(PointsBalance.customer_id == customer_id)
        .values(balance=PointsBalance.balance + cost, updated_at=now)
    )
    return False


async def balance(ctx: Context, customer_id: int) -> int:
    found = await ctx.session.scalar(select(PointsBalance.balance).where(PointsBalance.customer_id == customer_id))
    return int(found or 0)


async def _add_to_balance(ctx: Context, customer_id: int, delta: int) -> None:
    """``INSERT … ON CONFLICT (customer_id) DO UPDATE SET balance = balance + delta`` (both dialects)."""
    now = ctx.now()
    dialect = ctx.session.get_bind().dialect.name
    insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(PointsBalance).values(customer_id=customer_id, balance=delta, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={"balance": PointsBalance.balance + stmt.excluded.balance, "updated_at": stmt.excluded.updated_at},
    )
    await ctx.session.execute(stmt)
