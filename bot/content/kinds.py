"""The kernel's own file kinds: messages and tags — the vocabulary every feature refers to.

Features add theirs (``Feature.content``: channels, drips, lottery, …); the app composes the registry from the
feature list (:func:`bot.feature.content_registry_of`).
"""

from __future__ import annotations

from bot.content.checks import ALL_CHECKS
from bot.content.messages import FALLBACKS, MESSAGES
from bot.content.registry import FileKind, Registry
from bot.content.tags import TAG_GROUPS, check_tag_limits

MESSAGE_FILES = FileKind("messages", (MESSAGES, FALLBACKS))
TAG_FILES = FileKind("tags", (TAG_GROUPS,))

BASE_REGISTRY = Registry().with_kind(MESSAGE_FILES).with_kind(TAG_FILES, check_tag_limits).with_checks(*ALL_CHECKS)
