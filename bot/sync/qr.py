"""``siyu-bot channels qr CODE [-o file.png]``: a channel's QR code as a PNG for print (package cards).

The PNG is drawn locally with segno from what ``content sync`` recorded — nothing is downloaded:

* Official Account: the ``url`` answered by ``qrcode/create``, which the docs describe as the decoded
  content of the QR image, meant for generating one's own image (§8.2).
* WeCom 「联系我」/「加入群聊」: the recorded ``qr_code`` link (§4.1, §4.2). WeCom documents it as the
  code's *link* and its examples point at an image host, so the command says so when it writes it.
"""

from __future__ import annotations

import sys
from typing import TextIO

import segno

from bot.clock import SystemClock
from bot.config import Settings
from bot.content import ContentError, load_content
from bot.sync.command import open_store
from bot.sync.desired import channel_object
from bot.sync.model import CHANNEL_KINDS, MP_QRCODE, Op, Record
from bot.sync.planner import recorded_action
from bot.sync.records import RecordStore

SCALE = 12  # pixels per module: a version-4 code is ~400 px, enough for a 3 cm print at 300 dpi
SYNC_FIRST = "run `siyu-bot content sync` first"


def qr_payload(record: Record) -> str | None:
    """What the printed QR encodes: the OA ``url`` or the WeCom ``qr_code`` link."""
    value = record.data.get("url" if record.kind == MP_QRCODE else "qr_code")
    return value if isinstance(value, str) and value else None


def write_qr_png(payload: str, out_path: str) -> None:
    """Error correction M (15 % of the code may be damaged: fine for printed cards)."""
    segno.make(payload, error="m", micro=False).save(out_path, kind="png", scale=SCALE, border=4)


async def find_record(store: RecordStore, code: str) -> Record | None:
    for kind in CHANNEL_KINDS:
        record = await store.get(kind, code)
        if record is not None:
            return record
    return None


def outdated(settings: Settings, record: Record) -> str | None:
    """Why the recorded code no longer fits the content (a new code is due), or ``None``.

    An unreadable content directory is not a reason to refuse: the recorded code is still valid.
    """
    try:
        channel = load_content(settings.content_dir).channel(record.key)
    except ContentError:
        return None
    desired = None if channel is None else channel_object(channel)
    if desired is None:
        return f"channel {record.key!r} is no longer in the content"
    if desired.kind != record.kind or recorded_action(desired, record).op is Op.REPLACE:
        return f"channel {record.key!r} changed so that it needs a new code; {SYNC_FIRST}"
    return None


async def qr_command(settings: Settings, code: str, out_path: str, out: TextIO | None = None) -> int:
    """Write the channel's QR PNG to ``out_path``; 1 if it was never synced or is outdated."""
    stream = out if out is not None else sys.stdout
    async with open_store(settings, SystemClock()) as store:
        record = await find_record(store, code)
    if record is None:
        print(f"error: channel {code!r} was never synced; {SYNC_FIRST}", file=stream)
        return 1
    payload = qr_payload(record)
    if payload is None:
        print(f"error: channel {code!r} has no QR code recorded yet; {SYNC_FIRST}", file=stream)
        return 1
    reason = outdated(settings, record)
    if reason is not None:
        print(f"error: {reason}", file=stream)
        return 1
    try:
        write_qr_png(payload, out_path)
    except OSError as exc:
        print(f"error: cannot write {out_path}: {exc.strerror}", file=stream)
        return 1
    print(f"wrote {out_path} ({record.kind} {code}): {payload}", file=stream)
    if record.kind != MP_QRCODE:
        print(
            "note: WeCom's qr_code is a link to the code's image; check a test print scans as 「添加」/「加入群聊」",
            file=stream,
        )
    return 0
