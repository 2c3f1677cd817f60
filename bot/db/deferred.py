"""Core INSERTs held until the session's next statement or its commit: the ORM's autoflush, for row dicts.

A hot path that writes rows into one table again and again inside a transaction (drip steps: a few per
enrolment) hands them to :func:`defer_insert` instead of running an INSERT each time. They go out in one
``executemany`` per table just before the session runs any other statement (``do_orm_execute``: every
``session.execute`` / ``scalar`` / ``get`` that reaches the database) or commits (``before_commit``), so
everything the transaction reads or updates afterwards sees them, and they commit with it or not at all
(the end of the transaction without a commit — rollback, close — drops them; savepoints are not
tracked: nothing here uses them). Statements run straight on the session's connection
(``(await session.connection()).execute(…)``) do not flush them: that is how the hot path keeps its own
statements from flushing each time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

_KEY = "siyu_deferred_inserts"


def defer_insert(session: AsyncSession, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` before the session's next statement or commit."""
    pending: dict[Table, list[dict[str, Any]]] = session.info.setdefault(_KEY, {})
    pending.setdefault(table, []).extend(rows)


def flush_deferred(session: Session) -> None:
    """Write what :func:`defer_insert` holds now (sync: runs inside the async session's greenlet)."""
    pending: dict[Table, list[dict[str, Any]]] | None = session.info.pop(_KEY, None)
    if pending:
        connection = session.connection()
        for table, rows in pending.items():
            connection.execute(insert(table), rows)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    flush_deferred(state.session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    flush_deferred(session)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """Committed (already written), rolled back or closed: nothing held survives the transaction."""
    if transaction.parent is None:
        session.info.pop(_KEY, None)
