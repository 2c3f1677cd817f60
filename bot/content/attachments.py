"""Welcome attachments
(docs/platform.md#welcome-messages): image, link, miniprogram, video, file; at most 9 per message.

Media can be named by ``media_id`` (valid 3 days on WeCom, so only for quick tests) or by a file under
the content directory (``path`` / ``pic_path``) that sync uploads; the file must exist and fit WeCom's
upload limits (image 10 MB jpg/png, video 10 MB mp4, file 20 MB).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.content.model import (
    Attachment,
    FileAttachment,
    ImageAttachment,
    LinkAttachment,
    MiniprogramAttachment,
    VideoAttachment,
)
from bot.content.node import Node

MAX_ATTACHMENTS = 9
_URL = re.compile(r"https?://\S+")
_URL_HINT = "must be an http(s) URL"
_APPID = re.compile(r"wx[0-9a-f]{16}")
_MB = 1024 * 1024
_MEDIA_LIMITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "image": (10 * _MB, (".jpg", ".jpeg", ".png")),
    "video": (10 * _MB, (".mp4",)),
    "file": (20 * _MB, ()),
}


def _byte_limit(node: Node, name: str, value: str | None, limit: int) -> str | None:
    if value is not None and len(value.encode()) > limit:
        node.problem(name, f"longer than {limit} bytes ({len(value.encode())})")
        return None
    return value


def _media_file(node: Node, name: str, kind: str) -> str | None:
    """A content-relative file: must stay inside the content directory, exist and fit the limit."""
    rel = node.text(name)
    if rel is None:
        return None
    path = (node.root / rel).resolve()
    limit, suffixes = _MEDIA_LIMITS[kind]
    if not path.is_relative_to(node.root.resolve()):
        node.problem(name, f"{rel!r} is outside the content directory")
    elif not path.is_file():
        node.problem(name, f"file {rel!r} not found (paths are relative to the content directory)")
    elif suffixes and path.suffix.lower() not in suffixes:
        node.problem(name, f"{rel!r} must be one of {', '.join(suffixes)}")
    elif path.stat().st_size > limit:
        node.problem(name, f"{rel!r} is larger than {limit // _MB} MB")
    else:
        return rel
    return None


def _one_of(node: Node, names: tuple[str, ...], values: tuple[str | None, ...]) -> bool:
    given = [n for n, v in zip(names, values, strict=True) if node.has(n)]
    if len(given) != 1:
        node.problem(None, f"needs exactly one of {', '.join(names)} (got {len(given)})")
        return False
    return all(v is not None for n, v in zip(names, values, strict=True) if n in given)


def _image(node: Node) -> Attachment | None:
    media_id, pic_url = node.text("media_id"), node.text("pic_url", pattern=_URL, pattern_hint=_URL_HINT)
    path = _media_file(node, "path", "image")
    ok = _one_of(node, ("media_id", "pic_url", "path"), (media_id, pic_url, path))
    size = (node.root / path).stat().st_size if path is not None else None
    return ImageAttachment(media_id, pic_url, path, size) if ok else None


def _link(node: Node) -> Attachment | None:
    title = _byte_limit(node, "title", node.text("title", required=True), 128)
    url = node.text("url", required=True, pattern=_URL, pattern_hint=_URL_HINT)
    picurl = node.text("picurl", pattern=_URL, pattern_hint=_URL_HINT)
    desc = _byte_limit(node, "desc", node.text("desc"), 512)
    if title is None or url is None:
        return None
    return LinkAttachment(title, url, picurl, desc)


def _miniprogram(node: Node) -> Attachment | None:
    title = _byte_limit(node, "title", node.text("title", required=True), 64)
    appid = node.text("appid", required=True, pattern=_APPID, pattern_hint="a mini-program appid is wx + 16 hex")
    page = node.text("page", required=True)
    media_id, pic_path = node.text("pic_media_id"), _media_file(node, "pic_path", "image")
    ok = _one_of(node, ("pic_media_id", "pic_path"), (media_id, pic_path))
    if title is None or appid is None or page is None or not ok:
        return None
    return MiniprogramAttachment(title, appid, page, media_id, pic_path)


def _media(kind: str) -> Callable[[Node], Attachment | None]:
    def parse(node: Node) -> Attachment | None:
        media_id, path = node.text("media_id"), _media_file(node, "path", kind)
        if not _one_of(node, ("media_id", "path"), (media_id, path)):
            return None
        return VideoAttachment(media_id, path) if kind == "video" else FileAttachment(media_id, path)

    return parse


_PARSERS: dict[str, Callable[[Node], Attachment | None]] = {
    "image": _image,
    "link": _link,
    "miniprogram": _miniprogram,
    "video": _media("video"),
    "file": _media("file"),
}


def parse_attachment(node: Node) -> Attachment | None:
    msgtype = node.text("msgtype", required=True)
    if msgtype is None:
        node.finish()
        return None
    parser = _PARSERS.get(msgtype)
    if parser is None:
        node.problem("msgtype", f"unknown msgtype {msgtype!r} (known: {', '.join(_PARSERS)})")
        node.finish()
        return None
    attachment = parser(node)
    node.finish()
    return attachment


def parse_attachments(node: Node) -> tuple[Attachment, ...] | None:
    nodes = node.tables("attachments")
    if len(nodes) > MAX_ATTACHMENTS:
        node.problem("attachments", f"{len(nodes)} attachments, at most {MAX_ATTACHMENTS} allowed")
    parsed = [parse_attachment(n) for n in nodes]
    if len(nodes) > MAX_ATTACHMENTS or any(a is None for a in parsed):
        return None
    return tuple(a for a in parsed if a is not None)
