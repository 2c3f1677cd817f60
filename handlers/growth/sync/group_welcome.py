"""Group welcome templates (入群欢迎语素材,
docs/platform.md#group-welcome-templates, [W:92366]) from ``wecom_group`` channels' welcomes.

One template per ``wecom_group`` channel with a welcome message, keyed by the channel code
(``remote_id`` = ``template_id``). ``content check`` already makes such a welcome fit a template (one
variant, ≤ 1 attachment, only ``{nickname}``); here ``{nickname}`` becomes WeCom's ``%NICKNAME%`` and the
attachment becomes the template's ``image`` / ``link`` / ``miniprogram`` / ``file`` / ``video`` field.

Desired fields are the request body except for a file's media_id: a temporary media_id changes every
2.5 days (:mod:`handlers.growth.sync.media`) while the template keeps what it was given, so the fields name the file
and its sha256 under ``"media"`` instead. A re-upload of the same file changes nothing; a changed file
(or text) is one ``edit``. The body gets the file's current media_id from its ``media`` record when it
is sent, so templates are applied after the uploads of the same run.

``add`` is sent with ``notify: 1`` (members are asked to apply the new template to their groups),
``edit`` with ``notify: 0`` (groups that applied it already send the new version). A channel removed
from content leaves its template on WeCom (reported ``stale``), like tags.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bot.content import Content, Platform
from bot.content.model import Attachment, MiniprogramAttachment, media_path
from bot.content.render import attachment_json
from bot.content.templates import fill
from bot.platform.wecom_welcome import TemplateAttachment
from handlers.growth.content import channels_of
from handlers.growth.content.model import Channel
from handlers.growth.sync.model import GROUP_WELCOME, MEDIA, Action, Desired
from handlers.growth.sync.target import SyncTarget, record_of, wanted

# docs/platform.md#group-welcome-templates
NICKNAME = "%NICKNAME%"  # case-sensitive placeholder WeCom replaces with the joiner's nickname
MEDIA_KEY = "media"  # desired-only field: the attachment file whose media_id goes into the body


def template_text(text: str) -> str:
    """Message text → template text: ``{nickname}`` → ``%NICKNAME%``, ``{{``/``}}`` → literal braces."""
    return fill(text, {"nickname": NICKNAME}, {})


def _digest(root: Path, rel: str) -> str:
    """sha256 of an attachment file (``""`` when unreadable: the upload step reports why)."""
    try:
        return hashlib.sha256((root / rel).read_bytes()).hexdigest()
    except OSError:
        return ""


def _attachment_fields(attachment: Attachment, root: Path) -> dict[str, Any]:
    """``{"link": {...}}``; a file-backed one also gets ``"media": {path, sha256, field}``."""
    path = media_path(attachment)
    built = attachment_json(attachment, {path: ""} if path is not None else {}) or {}
    kind = attachment.msgtype
    fields: dict[str, Any] = {kind: {k: v for k, v in built.get(kind, {}).items() if v}}
    if path is not None:
        field = "pic_media_id" if isinstance(attachment, MiniprogramAttachment) else "media_id"
        fields[MEDIA_KEY] = {"path": path, "sha256": _digest(root, path), "field": field}
    return fields


def template_object(content: Content, channel: Channel) -> Desired | None:
    """The template a ``wecom_group`` channel's welcome asks for (``None``: not a group channel, or
    no welcome message)."""
    message = channels_of(content).welcome_for(channel) if channel.platform is Platform.WECOM_GROUP else None
    if message is None or not message.variants:
        return None
    variant = message.variants[0]
    fields: dict[str, Any] = {}
    text = template_text(variant.text)
    if text:
        fields["text"] = {"content": text}
    if variant.attachments:
        fields.update(_attachment_fields(variant.attachments[0], Path(content.root)))
    return Desired(GROUP_WELCOME, channel.code, fields)


def template_objects(content: Content) -> list[Desired]:
    return [obj for c in channels_of(content).channels if (obj := template_object(content, c)) is not None]


async def _request(desired: Desired, target: SyncTarget) -> tuple[str | None, TemplateAttachment | None]:
    """``(text, {type: fields})`` to send, with the file's current media_id from its ``media`` record.

    Raises ``ValueError`` when the file has no upload of its current content (its upload failed).
    """
    fields = desired.fields
    text = fields.get("text", {}).get("content")
    kinds = [k for k in fields if k not in ("text", MEDIA_KEY)]
    if not kinds:
        return text, None
    kind = kinds[0]
    inner = dict(fields[kind])
    media = fields.get(MEDIA_KEY)
    if isinstance(media, dict):
        record = await target.store.get(MEDIA, media["path"])
        if record is None or not record.remote_id or record.data.get("sha256") != media["sha256"]:
            raise ValueError(f"{media['path']} is not uploaded (media/upload failed?); the template waits for it")
        inner[media["field"]] = record.remote_id
    return text, {kind: inner}


async def create_template(action: Action, target: SyncTarget) -> None:
    """``group_welcome_template/add`` with ``notify: 1`` → ``template_id``, recorded at once."""
    desired = wanted(action)
    text, attachment = await _request(desired, target)
    template_id = await target.wecom_client().add_group_welcome_template(text, attachment, notify=True)
    await target.store.save(record_of(desired, template_id))


async def edit_template(action: Action, target: SyncTarget) -> None:
    """``group_welcome_template/edit`` of the recorded ``template_id`` with ``notify: 0``."""
    desired, record = wanted(action), action.record
    if record is None or not record.remote_id:
        raise ValueError(f"{action.kind} {action.key}: no template_id recorded")
    text, attachment = await _request(desired, target)
    await target.wecom_client().edit_group_welcome_template(record.remote_id, text, attachment, notify=False)
    await target.store.save(record_of(desired, record.remote_id))
