"""The SOP feature's content: drips (``drips.toml``), group posts and group tags (``group_sop.toml``) and the
contact budget (``budget.toml``) — their models, parsers, cross-checks and the typed view handlers read.

``CONTENT`` is what the feature adds to the kernel's content registry; ``sop_of(content)`` is the view.
"""

from __future__ import annotations

from datetime import date, tzinfo

from bot.content.registry import FileKind, Registry
from bot.content.store import Content
from handlers.sop.content.budget import BUDGET
from handlers.sop.content.checks import SOP_CHECKS
from handlers.sop.content.drips import DRIPS
from handlers.sop.content.group_sop import GROUP_POSTS
from handlers.sop.content.group_tags import GROUP_TAGS
from handlers.sop.content.mix import mix_report
from handlers.sop.content.view import SopContent, sop_of

__all__ = ["CONTENT", "SopContent", "sop_of", "sop_report"]

DRIP_FILES = FileKind("drips", (DRIPS,))
GROUP_SOP_FILES = FileKind("group_sop", (GROUP_POSTS, GROUP_TAGS))
BUDGET_FILES = FileKind("budget", (BUDGET,))

CONTENT = Registry().with_kind(DRIP_FILES).with_kind(GROUP_SOP_FILES).with_kind(BUDGET_FILES).with_checks(*SOP_CHECKS)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def sop_report(content: Content, start: date, tz: tzinfo) -> list[str]:
    """``content check``'s SOP lines: the counts, then the group posts' category mix for 30 days."""
    sop = sop_of(content)
    if not sop.drips and not sop.group_posts:
        return []
    counts = f"SOP: {_plural(len(sop.drips), 'drip')}; {_plural(len(sop.group_posts), 'group post')}"
    return [counts, *mix_report(content, start, tz)]
