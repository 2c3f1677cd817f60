"""``siyu-bot channels qr CODE [-o file.png]``: a channel's QR code as an image file for print.

* Official Account: drawn locally with segno (pure Python, no Pillow, the same PNG for the same URL) from
  the recorded ``url`` of ``qrcode/create``, which the docs describe as the decoded content of the QR
  image, meant for generating one's own image (docs/platform.md#parametric-qr-codes).
* WeCom 「联系我」/「加入群聊」: the recorded ``qr_code`` is the URL of an *image* of the code (WeCom hosts
  it on wework.qpic.cn, docs/platform.md#contact-me-codes, #join-group-codes). That image is downloaded and written as
  it is — re-encoding the URL
  would give customers a code that opens a picture. The download has a timeout and a 2 MiB cap and must
  be a PNG or JPEG (magic bytes). WeCom may serve either; the file keeps the served format, so when the
  output name's extension does not match (``card.png`` but a JPEG came), the right extension is used
  (``card.jpg``) and the command says so.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import aiohttp
import segno

from bot.clock import SystemClock
from bot.config import Settings
from bot.content import ContentError
from handlers.content import live_content
from handlers.growth.content import channels_of
from handlers.growth.sync.command import open_store
from handlers.growth.sync.desired import channel_object
from handlers.growth.sync.model import CHANNEL_KINDS, MP_QRCODE, Op, Record
from handlers.growth.sync.planner import recorded_action
from handlers.growth.sync.records import RecordStore

SCALE = 12  # pixels per module: a version-4 code is ~400 px, enough for a 3 cm print at 300 dpi
SYNC_FIRST = "run `siyu-bot content sync` first"
MAX_IMAGE_BYTES = 2 << 20  # a QR image is a few KB; anything near this is not one
DOWNLOAD_TIMEOUT = 15.0
FORMATS = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}
SUFFIXES = {"png": (".png",), "jpeg": (".jpg", ".jpeg")}


class QrDownloadError(Exception):
    """WeCom's QR image could not be fetched, or what came back is not a PNG/JPEG image."""


def qr_payload(record: Record) -> str | None:
    """The OA ``url`` (what the QR encodes) or the WeCom ``qr_code`` (where the QR image is)."""
    value = record.data.get("url" if record.kind == MP_QRCODE else "qr_code")
    return value if isinstance(value, str) and value else None


def write_qr_png(payload: str, out_path: str) -> None:
    """Error correction M (15 % of the code may be damaged: fine for printed cards)."""
    segno.make(payload, error="m", micro=False).save(out_path, kind="png", scale=SCALE, border=4)


def image_format(data: bytes) -> str | None:
    """``"png"`` or ``"jpeg"`` by magic bytes, else ``None``."""
    return next((name for name, magic in FORMATS.items() if data.startswith(magic)), None)


def output_path(requested: str, fmt: str) -> str:
    """``requested`` when its extension fits ``fmt``; else the same name with the right extension
    (``card.png`` → ``card.jpg`` for a JPEG; a name without an image extension gets one appended)."""
    path = Path(requested)
    if path.suffix.lower() in SUFFIXES[fmt]:
        return requested
    known = {s for suffixes in SUFFIXES.values() for s in suffixes}
    base = path.with_suffix("") if path.suffix.lower() in known else path
    return str(base) + SUFFIXES[fmt][0]


async def download_image(session: aiohttp.ClientSession, url: str) -> tuple[bytes, str]:
    """GET ``url`` → (bytes, ``"png"``/``"jpeg"``); :class:`QrDownloadError` with the reason otherwise."""
    if not url.startswith(("https://", "http://")):
        raise QrDownloadError("the recorded qr_code is not an http(s) URL")
    failure: str | None = None
    data, content_type = b"", ""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)) as resp:
            if resp.status != 200:
                raise QrDownloadError(f"HTTP {resp.status}")
            if resp.content_length is not None and resp.content_length > MAX_IMAGE_BYTES:
                raise QrDownloadError(f"the answer is larger than {MAX_IMAGE_BYTES >> 20} MiB")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(64 << 10):
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise QrDownloadError(f"the answer is larger than {MAX_IMAGE_BYTES >> 20} MiB")
                chunks.append(chunk)
            data, content_type = b"".join(chunks), resp.content_type
    except (aiohttp.ClientError, TimeoutError) as exc:
        failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if failure is not None:
        raise QrDownloadError(failure)
    fmt = image_format(data)
    if fmt is None:
        raise QrDownloadError(f"the answer is not a PNG or JPEG image ({content_type or 'no content type'})")
    return data, fmt


async def find_record(store: RecordStore, code: str) -> Record | None:
    for kind in CHANNEL_KINDS:
        record = await store.get(kind, code)
        if record is not None:
            return record
    return None


async def outdated(settings: Settings, record: Record) -> str | None:
    """Why the recorded code no longer fits the content (a new code is due), or ``None``.

    An unreadable content directory is not a reason to refuse: the recorded code is still valid.
    """
    try:
        channel = channels_of(await live_content(settings, strict=True)).channel(record.key)
    except ContentError:
        return None
    desired = None if channel is None else channel_object(channel)
    if desired is None:
        return f"channel {record.key!r} is no longer in the content"
    if desired.kind != record.kind or recorded_action(desired, record).op is Op.REPLACE:
        return f"channel {record.key!r} changed so that it needs a new code; {SYNC_FIRST}"
    return None


async def qr_command(settings: Settings, code: str, out_path: str, out: TextIO | None = None) -> int:
    """Write the channel's QR image to ``out_path``; 1 if it was never synced, is outdated, or WeCom's
    image cannot be downloaded. A WeCom JPEG is written with a ``.jpg`` extension (see the module doc)."""
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
    reason = await outdated(settings, record)
    if reason is not None:
        print(f"error: {reason}", file=stream)
        return 1
    if record.kind == MP_QRCODE:
        return _write(lambda: write_qr_png(payload, out_path), out_path, f"{record.kind} {code}: {payload}", stream)
    try:
        async with aiohttp.ClientSession() as session:
            data, fmt = await download_image(session, payload)
    except QrDownloadError as exc:
        print(f"error: cannot download the QR image of {code!r} from {payload}: {exc}", file=stream)
        return 1
    path = output_path(out_path, fmt)
    status = _write(lambda: Path(path).write_bytes(data), path, f"{record.kind} {code}: image from {payload}", stream)
    if status == 0 and path != out_path:
        print(f"note: WeCom served a {fmt.upper()} image, so it was written as {path} (not {out_path})", file=stream)
    return status


def _write(write: Callable[[], object], path: str, what: str, stream: TextIO) -> int:
    try:
        write()
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror}", file=stream)
        return 1
    print(f"wrote {path} ({what})", file=stream)
    return 0
