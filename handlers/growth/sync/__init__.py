"""``content sync``: make WeCom and the Official Account match the content files, idempotently.

``plan_sync(content, records, platform_state)`` decides one action per object (pure);
``apply(plan, target)`` performs the writes and records every created object at once in
``platform_objects``. ``sync_command`` / ``qr_command`` are the CLI entry points. Attachment files are
uploaded as WeCom temporary media and kept fresh (:mod:`handlers.growth.sync.media`, :func:`refresh_media`,
:class:`MediaRefresher`). See docs/sync.md.
"""

from handlers.growth.sync.apply import apply, read_platform_state
from handlers.growth.sync.command import sync_command
from handlers.growth.sync.desired import desired_objects
from handlers.growth.sync.media import MediaRefresher, plan_media, refresh_media
from handlers.growth.sync.model import (
    CONTACT_WAY,
    CORP_TAG,
    CORP_TAG_GROUP,
    GROUP_WELCOME,
    JOIN_WAY,
    MEDIA,
    MP_QRCODE,
    MP_TAG,
    Action,
    Desired,
    Op,
    Plan,
    PlatformState,
    Record,
    fingerprint,
)
from handlers.growth.sync.planner import plan_sync
from handlers.growth.sync.qr import qr_command, write_qr_png
from handlers.growth.sync.records import RecordStore
from handlers.growth.sync.target import SyncResult, SyncTarget

__all__ = [
    "CONTACT_WAY",
    "CORP_TAG",
    "CORP_TAG_GROUP",
    "GROUP_WELCOME",
    "JOIN_WAY",
    "MEDIA",
    "MP_QRCODE",
    "MP_TAG",
    "Action",
    "Desired",
    "MediaRefresher",
    "Op",
    "Plan",
    "PlatformState",
    "Record",
    "RecordStore",
    "SyncResult",
    "SyncTarget",
    "apply",
    "desired_objects",
    "fingerprint",
    "plan_media",
    "plan_sync",
    "qr_command",
    "read_platform_state",
    "refresh_media",
    "sync_command",
    "write_qr_png",
]
