"""Names and lookups of platform objects created from content (see ``handlers/growth/sync``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.gate import reraise_if_cancelling
from bot.parts import Part
from handlers.growth.sync.model import CONTACT_WAY, CORP_TAG, JOIN_WAY, MP_QRCODE, MP_TAG
from handlers.growth.tables import SyncedObject

WECOM_TAG = CORP_TAG  # key "group/name" → corp tag id
MP_QR = MP_QRCODE  # key channel code → ticket (url in data)
MEDIA = "media"  # key content-relative path → media_id (uploaded attachment files)

__all__ = [
    "CONTACT_WAY", "JOIN_WAY", "MEDIA", "MP_QR", "MP_TAG", "WECOM_TAG", "RemoteIdSnapshot", "all_remote_ids",
    "remote_ids",
]  # fmt: skip
log = logging.getLogger(__name__)


async def remote_ids(session: AsyncSession, kind: str, keys: Iterable[str]) -> dict[str, str]:
    """``{key: remote_id}`` for the synced objects of ``kind`` among ``keys`` (unsynced ones are absent)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    rows = await session.execute(
        select(SyncedObject.key, SyncedObject.remote_id).where(SyncedObject.kind == kind, SyncedObject.key.in_(wanted))
    )
    return {key: rid for key, rid in rows.all() if rid}


async def all_remote_ids(session: AsyncSession, kind: str) -> dict[str, str]:
    rows = await session.execute(select(SyncedObject.key, SyncedObject.remote_id).where(SyncedObject.kind == kind))
    return {key: rid for key, rid in rows.all() if rid}


class RemoteIdSnapshot:
    """An in-memory copy of :func:`all_remote_ids` of one kind, for code that must not read the database
    (door actions, bot/door.py). The app loads it at start-up and refreshes it after the server's own media
    uploads, after a content reload and every ``REFRESH_SECONDS`` (a ``content sync`` runs in another
    process). Until the first load it is empty: a reader must treat a missing id as "not known here"."""

    REFRESH_SECONDS = 30.0

    def __init__(self, kind: str = MEDIA) -> None:
        self.kind = kind
        self._ids: Mapping[str, str] = MappingProxyType({})
        self._wake = asyncio.Event()

    @property
    def ids(self) -> Mapping[str, str]:
        return self._ids

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as session:
            self._ids = MappingProxyType(await all_remote_ids(session, self.kind))

    async def try_refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """:meth:`refresh`, keeping the old copy (and logging) when the database cannot be read."""
        try:
            await self.refresh(sessions)
        except Exception:
            reraise_if_cancelling()
            log.warning("could not refresh the %s id snapshot; keeping the old one", self.kind, exc_info=True)

    def poke(self) -> None:
        """Refresh soon (from sync code: a content-reload hook)."""
        self._wake.set()

    async def run(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Load now, then refresh every ``REFRESH_SECONDS`` or at once when poked (a task for the server's
        lifetime)."""
        while True:
            await self.try_refresh(sessions)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.REFRESH_SECONDS)
            self._wake.clear()


# The process's snapshot of uploaded media ids, read by door actions (they must not touch the database).
MEDIA_IDS = Part[RemoteIdSnapshot]("growth.media_ids")
