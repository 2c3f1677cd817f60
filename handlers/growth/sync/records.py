"""``platform_objects`` rows: read before planning, written one by one right after each platform call.

Each save is its own committed transaction, so an interrupted sync keeps every object it created and
the next run resumes instead of creating duplicates (API-created 「联系我」/「加入群聊」 codes can only
be managed with their ``config_id``, docs/platform.md#contact-me-codes, #join-group-codes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from handlers.growth.sync.model import Record
from handlers.growth.tables import SyncedObject


def to_record(row: SyncedObject) -> Record:
    return Record(row.kind, row.key, row.remote_id, row.fingerprint, dict(row.data or {}))


class RecordStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self._sessionmaker

    async def load(self) -> list[Record]:
        async with self._sessionmaker() as session:
            rows = (await session.scalars(select(SyncedObject).order_by(SyncedObject.kind, SyncedObject.key))).all()
        return [to_record(r) for r in rows]

    async def get(self, kind: str, key: str) -> Record | None:
        async with self._sessionmaker() as session:
            row = await session.get(SyncedObject, (kind, key))
        return None if row is None else to_record(row)

    async def save(self, *records: Record) -> None:
        """Insert or replace ``records`` in one committed transaction."""
        now = self._clock.now()
        async with self._sessionmaker() as session, session.begin():
            for r in records:
                row = SyncedObject(
                    kind=r.kind,
                    key=r.key,
                    remote_id=r.remote_id,
                    fingerprint=r.fingerprint,
                    data=_json(r.data),
                    updated_at=now,
                )
                await session.merge(row)


def _json(data: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict (the JSON column must not hold mapping proxies or tuples)."""
    return {
        k: (_json(v) if isinstance(v, Mapping) else list(v) if isinstance(v, tuple) else v) for k, v in data.items()
    }
