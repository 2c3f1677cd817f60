"""WeCom temporary media: ``media/upload`` (上传临时素材, [W:90253]) and the media ids messages may use.

* ``POST media/upload?type=image|voice|video|file``, ``multipart/form-data`` with the file in field
  ``media`` → ``{"errcode": 0, "errmsg": "ok", "type", "media_id", "created_at"}``; ``created_at`` is a
  **string** of epoch seconds, as in WeCom's example (the Official Account's own upload answers a number).
* The media_id is valid **3 days** after ``created_at`` (on the simulator's clock).
* Limits: every file > 5 bytes; image ≤ 10 MB JPG/PNG, voice ≤ 2 MB AMR, video ≤ 10 MB MP4, file ≤ 20 MB.
  Formats are checked by their magic bytes. Errcodes from the global table ([W:90313]): 40004 bad
  ``type``, 40005 wrong file format, 40006 bad size (≤ 5 bytes, or a file over 20 MB), 40009 image too
  large, 40010 voice too large, 40011 video too large, 44001 no ``media`` file in the body (our choice:
  "多媒体文件为空").
* :func:`check_media_ids`: ``send_welcome_msg`` accepts only media ids this simulator issued, not expired,
  of the attachment's kind (a mini-program ``pic_media_id`` is an image); otherwise 40007 "不合法的媒体文件id".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.simulator.api import ApiError, ApiRequest, Route
from bot.simulator.models import Media

if TYPE_CHECKING:
    from bot.simulator.state import SimState

MEDIA_TTL = timedelta(days=3)
MIN_BYTES = 6
_MB = 1 << 20
# type -> (max bytes, errcode when larger)
LIMITS: dict[str, tuple[int, int]] = {
    "image": (10 * _MB, 40009),
    "voice": (2 * _MB, 40010),
    "video": (10 * _MB, 40011),
    "file": (20 * _MB, 40006),
}
# Which attachment field needs which media type.
_ATTACHMENT_MEDIA = {("image", "media_id"): "image", ("video", "media_id"): "video", ("file", "media_id"): "file"}
_ATTACHMENT_MEDIA[("miniprogram", "pic_media_id")] = "image"


def _format_ok(kind: str, data: bytes) -> bool:
    if kind == "image":
        return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
    if kind == "voice":
        return data.startswith(b"#!AMR")
    if kind == "video":
        return data[4:8] == b"ftyp"
    return True


def upload(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``media/upload``: store the file and answer a new media_id."""
    kind = req.query.get("type", "")
    if kind not in LIMITS:
        raise ApiError(40004, "invalid media type")
    media = req.files.get("media")
    if media is None:
        raise ApiError(44001, "empty media data")
    size = len(media.data)
    limit, errcode = LIMITS[kind]
    if size < MIN_BYTES:
        raise ApiError(40006, "invalid file size")
    if size > limit:
        raise ApiError(errcode, f"invalid {kind} size")
    if not _format_ok(kind, media.data):
        raise ApiError(40005, "invalid file type")
    item = Media(state.new_id("", 44), kind, media.filename, size, state.now())
    state.media[item.media_id] = item
    return {"type": kind, "media_id": item.media_id, "created_at": str(int(item.created_at.timestamp()))}


def media_valid(state: SimState, media_id: str, kind: str) -> bool:
    item = state.media.get(media_id)
    return item is not None and item.type == kind and state.now() - item.created_at < MEDIA_TTL


def check_media_ids(state: SimState, attachments: Iterable[dict[str, Any]]) -> None:
    """Every ``media_id`` / ``pic_media_id`` must be one we issued, unexpired, of the right type (40007)."""
    for item in attachments:
        msgtype = item.get("msgtype")
        inner = item.get(msgtype) if isinstance(msgtype, str) else None
        if not isinstance(inner, dict):
            continue
        for (kind, key), media_type in _ATTACHMENT_MEDIA.items():
            value = inner.get(key)
            if kind == msgtype and isinstance(value, str) and value and not media_valid(state, value, media_type):
                raise ApiError(40007, "invalid media_id")


ROUTES = {"media/upload": Route(upload)}
