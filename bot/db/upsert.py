"""Dialect-aware ``INSERT … ON CONFLICT DO NOTHING`` — identical on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
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
