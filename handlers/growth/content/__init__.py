"""The growth feature's content: channels (``channels.toml``: 联系我 / 加入群聊 codes and Official Account
QR scenes) — their model, parser, cross-checks and the typed view handlers read.

``CONTENT`` is what the feature adds to the kernel's registry (messages and tags are the kernel's);
``channels_of(content)`` is the view.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, tzinfo

from bot.content.registry import FileKind, Registry
from bot.content.store import Content
from handlers.growth.content.channels import CHANNELS
from handlers.growth.content.checks import CHANNEL_CHECKS
from handlers.growth.content.view import ChannelsContent, channels_of

__all__ = ["CHANNEL_FILES", "CONTENT", "ChannelsContent", "channels_of", "channels_report"]

CHANNEL_FILES = FileKind("channels", (CHANNELS,))

CONTENT = Registry().with_kind(CHANNEL_FILES).with_checks(*CHANNEL_CHECKS)


def channels_report(content: Content, start: date, tz: tzinfo) -> list[str]:
    """``content check``'s channels line: how many codes of each kind."""
    channels = channels_of(content).channels
    kinds = Counter(c.platform.value for c in channels)
    detail = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    return [f"channels: {len(channels)}" + (f" ({detail})" if detail else "")]
