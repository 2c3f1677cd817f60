"""The operator content model: frozen dataclasses, built only by the loader from validated TOML.

Field names follow WeCom's spelling (``state``, ``chat_id``, ``pic_media_id``) so docs and code grep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from typing import ClassVar


class Platform(StrEnum):
    """Which kind of code a channel is (docs/platform.md#contact-me-codes, #join-group-codes, #parametric-qr-codes)."""

    WECOM_FRIEND = "wecom_friend"  # 联系我 (add_contact_way), attributed by ``state``
    WECOM_GROUP = "wecom_group"  # 加入群聊 (groupchat/add_join_way), attributed by ``state``
    MP = "mp"  # Official Account permanent string-scene QR code, attributed by ``scene_str``

    @property
    def is_wecom(self) -> bool:
        return self is not Platform.MP


WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Window:
    """A time of day range in the configured timezone, start inclusive, end exclusive, in minutes.

    ``end <= start`` means it crosses midnight (``22:00-02:00``); ``end`` may be 1440 (``24:00``).
    """

    start: int
    end: int

    def intervals(self) -> tuple[tuple[int, int], ...]:
        if self.start < self.end:
            return ((self.start, self.end),)
        return ((self.start, 1440), (0, self.end)) if self.end else ((self.start, 1440),)

    def contains(self, at: time) -> bool:
        minute = at.hour * 60 + at.minute
        return any(lo <= minute < hi for lo, hi in self.intervals())

    def overlaps(self, other: Window) -> bool:
        return any(a < d and c < b for a, b in self.intervals() for c, d in other.intervals())

    def __str__(self) -> str:
        return f"{format_minute(self.start)}-{format_minute(self.end)}"


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class ImageAttachment:
    msgtype: ClassVar[str] = "image"
    media_id: str | None = None
    pic_url: str | None = None
    path: str | None = None  # a file under the content directory, uploaded by sync
    size: int | None = field(default=None, compare=False)  # bytes of ``path`` when loaded


@dataclass(frozen=True, slots=True)
class LinkAttachment:
    msgtype: ClassVar[str] = "link"
    title: str
    url: str
    picurl: str | None = None
    desc: str | None = None


@dataclass(frozen=True, slots=True)
class MiniprogramAttachment:
    msgtype: ClassVar[str] = "miniprogram"
    title: str
    appid: str
    page: str
    pic_media_id: str | None = None
    pic_path: str | None = None  # cover under the content directory (520×416 recommended)


@dataclass(frozen=True, slots=True)
class VideoAttachment:
    msgtype: ClassVar[str] = "video"
    media_id: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class FileAttachment:
    msgtype: ClassVar[str] = "file"
    media_id: str | None = None
    path: str | None = None


Attachment = ImageAttachment | LinkAttachment | MiniprogramAttachment | VideoAttachment | FileAttachment


def media_path(attachment: Attachment) -> str | None:
    """The content-relative file whose uploaded media_id this attachment needs, if any."""
    if isinstance(attachment, MiniprogramAttachment):
        return attachment.pic_path
    if isinstance(attachment, LinkAttachment):
        return None
    return attachment.path


@dataclass(frozen=True, slots=True)
class Variant:
    """One version of a message. ``ref`` (``message/variant``) is what stats record for the A/B split."""

    message_id: str
    id: str
    weight: int
    window: Window | None
    text: str
    attachments: tuple[Attachment, ...]
    variables: frozenset[str]

    @property
    def ref(self) -> str:
        return f"{self.message_id}/{self.id}"


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    name: str | None
    variants: tuple[Variant, ...]

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset().union(*(v.variables for v in self.variants))


@dataclass(frozen=True, slots=True)
class TagGroup:
    """A WeCom corp tag group; ``mp`` groups also become (flat) Official Account tags."""

    name: str
    tags: tuple[str, ...]
    wecom: bool
    mp: bool

    def refs(self) -> tuple[str, ...]:
        return tuple(f"{self.name}/{t}" for t in self.tags)


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    meaning: str
    needs_profile: bool  # unknown right after an add: a fallback text is required


VARIABLES: Mapping[str, Variable] = {
    v.name: v
    for v in (
        Variable("nickname", "the customer's WeChat nickname", needs_profile=True),
        Variable("staff_name", "the name of the staff member who was added", needs_profile=True),
        Variable("channel", "the channel code, e.g. pkgcard", needs_profile=False),
        Variable("channel_name", "the channel's name, e.g. 包裹卡", needs_profile=False),
    )
}
