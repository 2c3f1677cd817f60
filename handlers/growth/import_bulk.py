"""Page-at-a-time statements for ``siyu-bot import``: a page of 100 customers (or a page of groups' members)
costs a handful of statements instead of several per row (bench/import.py: 100,000 customers).

- :class:`CustomerCache` — the customers of a page, loaded with one query per identifier column and kept
  for the page's transaction, so looking a customer up is a dict read; what it does not hold is read
  from the database as before.
- :func:`insert_new` — ``INSERT … ON CONFLICT DO NOTHING RETURNING`` for many rows at once (SQLite ≥ 3.35
  and PostgreSQL): which of them were new.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Customer

MAX_ROWS_PER_STATEMENT = 500  # × at most 12 columns: far below SQLite's 32,766 bound parameters


async def insert_new(
    session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], conflict: list[str], returning: list[str]
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` unless they conflict on ``conflict``; the ``returning`` columns of those inserted."""
    tbl = getattr(table, "__table__", table)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    out: list[tuple[Any, ...]] = []
    if not rows:
        return out
    # executemany with RETURNING: SQLAlchemy batches it into multi-row statements ("insertmanyvalues")
    # from one cached compilation (a .values([...]) statement would be compiled anew for every page)
    stmt = insert(tbl).on_conflict_do_nothing(index_elements=conflict).returning(*(tbl.c[c] for c in returning))
    for start in range(0, len(rows), MAX_ROWS_PER_STATEMENT):
        chunk = list(rows[start : start + MAX_ROWS_PER_STATEMENT])
        out += [tuple(r) for r in (await session.execute(stmt, chunk)).all()]
    return out


class CustomerCache:
    """Customers by ``(column, value)`` for one transaction; ``None`` = known not to exist."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Customer | None] = {}

    def clear(self) -> None:
        self._rows.clear()

    async def load(self, session: AsyncSession, column: str, values: Iterable[str | None]) -> None:
        wanted = sorted({v for v in values if v} - {v for (c, v) in self._rows if c == column})
        for start in range(0, len(wanted), MAX_ROWS_PER_STATEMENT):
            chunk = wanted[start : start + MAX_ROWS_PER_STATEMENT]
            self._rows.update({(column, v): None for v in chunk})
            col = getattr(Customer, column)
            for customer in (await session.scalars(select(Customer).where(col.in_(chunk)))).all():
                self.put(customer)

    def put(self, customer: Customer) -> None:
        for column in ("external_userid", "openid", "unionid"):
            value = getattr(customer, column)
            if value:
                self._rows[(column, value)] = customer

    def known(self, column: str, value: str) -> bool:
        return (column, value) in self._rows

    def get(self, column: str, value: str) -> Customer | None:
        return self._rows.get((column, value))
