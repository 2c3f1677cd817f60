"""Channel checks across files: unique attribution keys, a default channel, tags and welcomes that exist and fit."""

from __future__ import annotations

from bot.content.messages import MESSAGES
from bot.content.model import Message, Platform, TagGroup
from bot.content.problems import Reporter
from bot.content.registry import Draft, Located
from bot.content.tags import TAG_GROUPS
from handlers.growth.content.channels import CHANNELS
from handlers.growth.content.model import Channel

# docs/platform.md#customer-service-messages
MP_WELCOME_ATTACHMENTS = 3  # after the passive reply: 3 customer-service messages in 1 min


def check_unique_attribution(draft: Draft, report: Reporter) -> None:
    """Two channels with one ``state`` (or ``scene_str``) could not be told apart in callbacks."""
    seen: dict[tuple[bool, str], Located[Channel]] = {}
    for located in draft.get(CHANNELS):
        channel = located.value
        field = "state" if channel.platform.is_wecom else "scene_str"
        slot = (channel.platform.is_wecom, channel.attribution_key)
        other = seen.setdefault(slot, located)
        if other is not located:
            report.add(
                located.file,
                f"{located.key}.{field}",
                f"duplicate {field} {channel.attribution_key!r} (also channel {other.value.code!r} "
                f"in {other.file} {other.key})",
            )


def check_default_channel(draft: Draft, report: Reporter) -> None:
    channels = draft.get(CHANNELS)
    if not channels:
        return
    defaults: dict[Platform, Located[Channel]] = {}
    for located in channels:
        if not located.value.default:
            continue
        other = defaults.setdefault(located.value.platform, located)
        if other is not located:
            report.add(
                located.file,
                f"{located.key}.default",
                f"a second default {located.value.platform.value} channel (first: {other.value.code!r})",
            )
    if not defaults and draft.complete(CHANNELS):
        file = draft.first_file("channels", channels[0].file)
        report.add(file, "channels", "no channel has default = true (needed for unattributed arrivals)")


def _tag_problem(ref: str, platform: Platform, groups: dict[str, TagGroup], draft: Draft) -> str | None:
    group_name, _, tag = ref.partition("/")
    group = groups.get(group_name)
    if not tag:
        return f'{ref!r} must be written as "group/tag", e.g. "渠道/包裹卡"'
    if group is None or tag not in group.tags:
        broken = draft.may_exist(TAG_GROUPS, group_name)
        return None if broken else f"unknown tag {ref!r} (not in any [[tag_groups]])"
    if platform.is_wecom and not group.wecom:
        return f"tag group {group_name!r} is not synced to WeCom (platforms)"
    if platform is Platform.MP and not group.mp:
        return f"tag group {group_name!r} is not synced to the Official Account (platforms)"
    return None


def check_channel_tags(draft: Draft, report: Reporter) -> None:
    groups: dict[str, TagGroup] = {g.value.name: g.value for g in draft.get(TAG_GROUPS)}
    for located in draft.get(CHANNELS):
        for i, ref in enumerate(located.value.tags):
            reason = _tag_problem(ref, located.value.platform, groups, draft)
            if reason is not None:
                report.add(located.file, f"{located.key}.tags[{i}]", reason)


GROUP_WELCOME_TEXT_BYTES = 3000  # group_welcome_template text.content (docs/platform.md#group-welcome-templates)


def _welcome_fits(channel: Channel, message: Message) -> str | None:
    """Why a channel's platform cannot send this message, or None."""
    if channel.platform is Platform.WECOM_GROUP:
        if len(message.variants) > 1:
            return "a group welcome is a fixed template applied by the group owner: no variants"
        variant = message.variants[0]
        if len(variant.attachments) > 1:
            return "a group welcome template holds text and at most 1 attachment"
        if variant.variables - {"nickname"}:
            return "a group welcome template can only use {nickname}"
        size = len(variant.text.replace("{nickname}", "%NICKNAME%").encode())
        if size > GROUP_WELCOME_TEXT_BYTES:
            return f"a group welcome template's text is at most {GROUP_WELCOME_TEXT_BYTES} bytes (got {size})"
    if channel.platform is Platform.MP:
        for variant in message.variants:
            if len(variant.attachments) > MP_WELCOME_ATTACHMENTS:
                return (
                    f"variant {variant.id!r}: an Official Account follow allows "
                    f"{MP_WELCOME_ATTACHMENTS} attachments after the reply"
                )
    return None


def check_channel_welcome(draft: Draft, report: Reporter) -> None:
    messages = {m.value.id: m.value for m in draft.get(MESSAGES)}
    for located in draft.get(CHANNELS):
        channel = located.value
        if channel.welcome is None:
            continue
        message = messages.get(channel.welcome)
        if message is None:
            if not draft.may_exist(MESSAGES, channel.welcome):
                report.add(located.file, f"{located.key}.welcome", f"message {channel.welcome!r} not found")
            continue
        reason = _welcome_fits(channel, message)
        if reason is not None:
            report.add(located.file, f"{located.key}.welcome", f"{channel.welcome!r}: {reason}")


CHANNEL_CHECKS = (
    check_unique_attribution,
    check_default_channel,
    check_channel_tags,
    check_channel_welcome,
)
