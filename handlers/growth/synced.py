"""Names and lookups of platform objects created from content (see ``handlers/growth/sync``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.growth.sync.model import CONTACT_WAY, CORP_TAG, JOIN_WAY, MP_QRCODE, MP_TAG
from handlers.growth.tables import SyncedObject

WECOM_TAG = CORP_TAG  # key "group/name" → corp tag id
MP_QR = MP_QRCODE  # key channel code → ticket (url in data)
MEDIA = "media"  # key content-relative path → media_id (uploaded attachment files)

__all__ = ["CONTACT_WAY", "JOIN_WAY", "MEDIA", "MP_QR", "MP_TAG", "WECOM_TAG", "all_remote_ids", "remote_ids"]


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
