"""Choosing a variant (A/B by weight, time of day) and rendering it to send_welcome_msg's JSON shape.

Randomness and time are injected: pass ``ctx.rng`` and the local time of ``ctx.clock`` in the
configured timezone (``local_time_of(clock.now(), settings.tz)``). Record ``variant.ref`` with the send so
stats can show the A/B split.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any

from bot.content.model import (
    Attachment,
    ImageAttachment,
    LinkAttachment,
    Message,
    MiniprogramAttachment,
    Variant,
    media_path,
)
from bot.content.templates import fill


def local_time_of(now: datetime, tz: tzinfo) -> time:
    """The wall-clock time in the configured timezone, for time-of-day variants."""
    return now.astimezone(tz).time()


def eligible_variants(message: Message, at: time) -> tuple[Variant, ...]:
    """Variants whose window contains ``at``; if none, those without hours; if none, all."""
    windowed = tuple(v for v in message.variants if v.window is not None and v.window.contains(at))
    if windowed:
        return windowed
    return tuple(v for v in message.variants if v.window is None) or message.variants


def choose_variant(message: Message, rng: random.Random, local_time: time) -> Variant:
    """Pick by integer weight among the variants eligible at ``local_time`` (configured timezone)."""
    pool = eligible_variants(message, local_time)
    if len(pool) == 1:
        return pool[0]
    ticket = rng.randrange(sum(v.weight for v in pool))
    for variant in pool:
        ticket -= variant.weight
        if ticket < 0:
            return variant
    return pool[-1]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A variant ready to send. ``missing_media`` lists files not uploaded yet: their attachments are
    left out so the welcome still goes out inside its 20 s (the caller logs them)."""

    variant_ref: str
    text: str
    attachments: tuple[dict[str, Any], ...]
    missing_media: tuple[str, ...] = ()

    def welcome_body(self, welcome_code: str) -> dict[str, Any]:
        """The exact ``externalcontact/send_welcome_msg`` request body (docs/platform.md#welcome-messages)."""
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if self.text:
            body["text"] = {"content": self.text}
        if self.attachments:
            body["attachments"] = [dict(a) for a in self.attachments]
        return body


def _fields(attachment: Attachment, media_id: str | None) -> dict[str, str]:
    if isinstance(attachment, LinkAttachment):
        out = {"title": attachment.title, "picurl": attachment.picurl, "desc": attachment.desc}
        return {k: v for k, v in {**out, "url": attachment.url}.items() if v is not None}
    if isinstance(attachment, MiniprogramAttachment):
        pic = attachment.pic_media_id or media_id or ""
        return {
            "title": attachment.title,
            "pic_media_id": pic,
            "appid": attachment.appid,
            "page": attachment.page,
        }
    if isinstance(attachment, ImageAttachment) and attachment.pic_url is not None:
        return {"pic_url": attachment.pic_url}
    return {"media_id": attachment.media_id or media_id or ""}


def attachment_json(attachment: Attachment, media_ids: Mapping[str, str]) -> dict[str, Any] | None:
    """``{"msgtype": "link", "link": {...}}``; None when its file has no uploaded media_id yet."""
    path = media_path(attachment)
    media_id = media_ids.get(path) if path is not None else None
    if path is not None and media_id is None:
        return None
    return {"msgtype": attachment.msgtype, attachment.msgtype: _fields(attachment, media_id)}


def render(
    variant: Variant,
    variables: Mapping[str, str | None],
    fallbacks: Mapping[str, str],
    media_ids: Mapping[str, str] | None = None,
) -> Rendered:
    """Fill the text (unknown or blank values take the fallback) and build the attachment JSON.

    ``media_ids`` maps content-relative files (``path``/``pic_path``) to their uploaded media_id.
    """
    media = media_ids or {}
    attachments: list[dict[str, Any]] = []
    missing: list[str] = []
    for attachment in variant.attachments:
        built = attachment_json(attachment, media)
        if built is None:
            missing.append(media_path(attachment) or "")
        else:
            attachments.append(built)
    text = fill(variant.text, variables, fallbacks)
    return Rendered(variant.ref, text, tuple(attachments), tuple(missing))
