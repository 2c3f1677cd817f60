"""``siyu-bot content check``: every problem as ``file:key: reason``, or a one-line summary."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.content.kinds import DEFAULT_REGISTRY
from bot.content.loader import read_content
from bot.content.registry import Registry


def check_command(content_dir: str, out: TextIO | None = None, registry: Registry = DEFAULT_REGISTRY) -> int:
    """Validate ``content_dir``; 0 when everything loads, 1 otherwise (problems printed)."""
    stream = out if out is not None else sys.stdout
    content, report = read_content(content_dir, registry)
    if content is None:
        for problem in report.problems:
            print(problem, file=stream)
        return 1
    summary = f"OK: {len(content.channels)} channels, {len(content.messages)} messages, {content.tag_count} tags"
    print(summary, file=stream)
    return 0
