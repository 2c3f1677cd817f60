"""Content → the platform objects it asks for, with exactly the fields each API receives.

* Tag groups with ``wecom`` → one corp tag group and its tags (docs/platform.md#corp-tags, ``add_corp_tag``).
* Tag groups with ``mp`` → flat Official Account tags named like the tag (``tags/create``).
* ``wecom_friend`` channels → a 「联系我」 QR code (docs/platform.md#contact-me-codes, scene 2).
* ``wecom_group`` channels → a 「加入群聊」 QR code (docs/platform.md#join-group-codes, scene 2, ≤ 5 chat ids).
* ``mp`` channels → a permanent string-scene QR code (docs/platform.md#parametric-qr-codes, ``QR_LIMIT_STR_SCENE``).
* ``wecom_group`` channels with a welcome → a group welcome template
  (docs/platform.md#group-welcome-templates, :mod:`handlers.growth.sync.group_welcome`;
  the only desired fields that read a file: the sha256 of the attachment file, if any).
"""

from __future__ import annotations

from typing import Any

from bot.content import Content, Platform
from handlers.growth.content import channels_of
from handlers.growth.content.model import Channel, ContactWay, JoinWay
from handlers.growth.sync.group_welcome import template_objects
from handlers.growth.sync.model import CONTACT_WAY, CORP_TAG, CORP_TAG_GROUP, JOIN_WAY, MP_QRCODE, MP_TAG, Desired

QR_SCENE = 2  # scene 2 = QR code: only then does add_contact_way answer qr_code (docs/platform.md#contact-me-codes)


def contact_way_type(way: ContactWay) -> int:
    """1 (single member) when every user list the code may ever hold has one member, else 2.

    The runtime rotation (schedule, daily limit, backup staff) swaps the code's ``user`` list with
    ``update_contact_way``; a type-1 code takes exactly one user
    (docs/platform.md#contact-me-codes) and ``type`` cannot be updated.
    """
    lists = [way.staff, way.backup_staff, *(way.schedule or ())]
    return 1 if all(len(users) <= 1 for users in lists) else 2


def contact_way_fields(channel: Channel, way: ContactWay) -> dict[str, Any]:
    """The user list is the content's default ``staff``; the handler rotates it at runtime."""
    return {
        "type": contact_way_type(way),
        "scene": QR_SCENE,
        "state": channel.state,
        "skip_verify": way.skip_verify,
        "remark": channel.name,
        "user": list(way.staff),
    }


def join_way_fields(channel: Channel, way: JoinWay) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "scene": QR_SCENE,
        "remark": channel.name,
        "auto_create_room": 1 if way.auto_create_room else 0,
        "chat_id_list": list(way.chat_ids),
        "state": channel.state,
    }
    if way.room_base_name is not None:
        fields["room_base_name"] = way.room_base_name
    if way.room_base_id is not None:
        fields["room_base_id"] = way.room_base_id
    return fields


def channel_object(channel: Channel) -> Desired | None:
    """The QR-bearing object of a channel (``None`` if the channel lacks its platform settings)."""
    if channel.platform is Platform.WECOM_FRIEND and channel.contact_way is not None:
        return Desired(CONTACT_WAY, channel.code, contact_way_fields(channel, channel.contact_way))
    if channel.platform is Platform.WECOM_GROUP and channel.join_way is not None:
        return Desired(JOIN_WAY, channel.code, join_way_fields(channel, channel.join_way))
    if channel.platform is Platform.MP and channel.scene_str:
        return Desired(MP_QRCODE, channel.code, {"action_name": "QR_LIMIT_STR_SCENE", "scene_str": channel.scene_str})
    return None


def tag_objects(content: Content) -> list[Desired]:
    out: list[Desired] = []
    for group in content.tag_groups:
        if group.wecom:
            out.append(Desired(CORP_TAG_GROUP, group.name, {"group_name": group.name}))
            out.extend(
                Desired(CORP_TAG, f"{group.name}/{t}", {"group_name": group.name, "name": t}) for t in group.tags
            )
        if group.mp:
            out.extend(Desired(MP_TAG, f"{group.name}/{t}", {"name": t}) for t in group.tags)
    return out


def desired_objects(content: Content) -> list[Desired]:
    """Every object the content asks for: tags first (channels refer to them), then channel codes, then
    group welcome templates."""
    channels = [obj for c in channels_of(content).channels if (obj := channel_object(c)) is not None]
    return [*tag_objects(content), *channels, *template_objects(content)]
