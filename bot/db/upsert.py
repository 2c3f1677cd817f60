"""Dialect-aware ``INSERT … ON CONFLICT DO NOTHING`` — identical on SQLite and PostgreSQL — and VALUES that
stay in SQLAlchemy's compiled cache when there is one row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Insert, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_ignore(session: AsyncSession, table: Table | Any, values: dict[str, Any], conflict: list[str]) -> bool:
    """Insert one row unless it conflicts on ``conflict``; True if a row was inserted."""
    tbl = getattr(table, "__table__", table)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(tbl).values(**values).on_conflict_do_nothing(index_elements=conflict)
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


S = TypeVar("S", bound=Insert)


def with_rows(stmt: S, rows: Sequence[dict[str, Any]]) -> S:
    """``stmt`` with ``rows`` as its VALUES. SQLAlchemy compiles a multi-row ``.values([...])`` anew on every
    execution (it is never cached), a one-row ``.values(**row)`` once: the usual single chat draw or ticket
    takes the cached form."""
    return stmt.values(**rows[0]) if len(rows) == 1 else stmt.values(list(rows))
