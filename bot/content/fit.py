"""What each way of sending can carry, with the platform's documented limits (docs/platform.md sections cited).

Only limits the official documentation states are enforced (each cited below); where it gives
none (Official Account customer-service text, add_msg_template text, app messages) the message's own
4000-byte bound (messages.py) is the only one.
"""

from __future__ import annotations

from bot.content.model import FileAttachment, ImageAttachment, Message, Platform, VideoAttachment
from bot.content.registry import Draft
from bot.content.tags import TAG_GROUPS

ROBOT_TEXT_BYTES = 2048  # webhook robot msgtype text: content ≤ 2048 bytes (docs/platform.md#group-robots)
ROBOT_IMAGE_BYTES = 2 * 1024 * 1024  # webhook robot image: ≤ 2 MB, JPG/PNG (docs/platform.md#group-robots)
# docs/platform.md#customer-service-messages
MP_WINDOW_MESSAGES = 5  # customer-service messages in the 48 h after the user writes
MP_EVENT_MESSAGES = 3  # in the 1 minute after a follow / scan / menu click (docs/platform.md#customer-service-messages)
KF_WINDOW_MESSAGES = 5  # kf/send_msg: 5 messages in the 48 h after the customer's message (docs/platform.md#wecom-kf)
# Official Account customer-service msgtypes (docs/platform.md#customer-service-messages) have no "file"; a link goes as
# news with 1 article (docs/platform.md#passive-replies)
MP_CUSTOM_TYPES = frozenset({"image", "video", "link", "miniprogram"})
ROBOT_TYPES = frozenset({"image", "link", "file"})  # robot msgtypes image / news / file (docs/platform.md#group-robots)
KF_TYPES = frozenset({"image", "video", "file", "link", "miniprogram"})  # kf/send_msg types (docs/platform.md#wecom-kf)


def send_count(message: Message) -> int:
    """Messages one send costs where each text and attachment is its own message (OA, kf): the worst variant."""
    return max((1 if v.text else 0) + len(v.attachments) for v in message.variants)


def types_problem(message: Message, allowed: frozenset[str], where: str) -> str | None:
    for variant in message.variants:
        for attachment in variant.attachments:
            if attachment.msgtype not in allowed:
                return f"variant {variant.id!r}: a {attachment.msgtype} attachment cannot be sent {where}"
    return None


def robot_problem(message: Message) -> str | None:
    reason = types_problem(message, ROBOT_TYPES, "by a group robot (text, image, news, file)")
    if reason is not None:
        return reason
    for variant in message.variants:
        if len(variant.text.encode()) > ROBOT_TEXT_BYTES:
            return f"variant {variant.id!r}: a group robot text is at most {ROBOT_TEXT_BYTES} bytes"
        for attachment in variant.attachments:
            path = attachment.path if isinstance(attachment, ImageAttachment | FileAttachment) else None
            if isinstance(attachment, ImageAttachment) and path is None:
                return f"variant {variant.id!r}: a group robot sends images from a file (path), not media_id/pic_url"
            if isinstance(attachment, ImageAttachment) and (attachment.size or 0) > ROBOT_IMAGE_BYTES:
                return f"variant {variant.id!r}: a group robot image is at most 2 MB ({path})"
            if isinstance(attachment, VideoAttachment):
                return f"variant {variant.id!r}: a group robot cannot send video"
    return None


def tag_platforms(ref: str, draft: Draft) -> tuple[Platform, ...] | None:
    """Platforms a ``"group/tag"`` is synced to (None: unknown tag)."""
    group_name, _, tag = ref.partition("/")
    for located in draft.get(TAG_GROUPS):
        group = located.value
        if group.name == group_name and tag in group.tags:
            wecom = (Platform.WECOM_FRIEND, Platform.WECOM_GROUP) if group.wecom else ()
            return (*wecom, *((Platform.MP,) if group.mp else ()))
    return None


def tag_reason(ref: str, draft: Draft) -> str | None:
    """Why a tag reference is wrong, or None (also None when its group failed to parse: reported there)."""
    group_name, _, tag = ref.partition("/")
    if not tag:
        return f'{ref!r} must be written as "group/tag", e.g. "渠道/包裹卡"'
    if tag_platforms(ref, draft) is None and not draft.may_exist(TAG_GROUPS, group_name):
        return f"unknown tag {ref!r} (not in any [[tag_groups]])"
    return None
