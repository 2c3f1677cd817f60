"""``content sync``: make WeCom and the Official Account match the content files, idempotently.

``plan_sync(content, records, platform_state)`` decides one action per object (pure);
``apply(plan, target)`` performs the writes and records every created object at once in
``platform_objects``. ``sync_command`` / ``qr_command`` are the CLI entry points. Attachment files are
uploaded as WeCom temporary media and kept fresh (:mod:`bot.sync.media`, :func:`refresh_media`,
:class:`MediaRefresher`). See docs/sync.md.
"""

from bot.sync.apply import apply, read_platform_state
from bot.sync.command import sync_command
from bot.sync.desired import desired_objects
from bot.sync.media import MediaRefresher, plan_media, refresh_media
from bot.sync.model import (
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
from bot.sync.planner import plan_sync
from bot.sync.qr import qr_command, write_qr_png
from bot.sync.records import RecordStore
from bot.sync.target import SyncResult, SyncTarget

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
