"""``siyu-bot content check``: every problem as ``file:key: reason``, or a summary and the mix report.

After the OK line come the features' reports (``Feature.content_reports``: the SOP and interaction
counts, the group posts' category mix for the next 30 days against the 3:3:3:1 guideline);
``warning:`` lines (e.g. a week that is mostly marketing) never fail the check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, tzinfo
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.content.loader import read_content
from bot.content.registry import Registry
from bot.content.store import Content

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")

# A feature's lines after the OK line: its counts, its warnings (content, first day, timezone).
ContentReport = Callable[[Content, date, tzinfo], list[str]]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def check_command(
    content_dir: str,
    registry: Registry,
    out: TextIO | None = None,
    *,
    reports: Sequence[ContentReport] = (),
    tz: tzinfo = DEFAULT_TZ,
    today: date | None = None,
) -> int:
    """Validate ``content_dir``; 0 when everything loads, 1 otherwise (problems printed).

    ``tz`` is the configured timezone (``settings.tz``); ``today`` the first day of the mix report
    (default: today in ``tz``).
    """
    stream = out if out is not None else sys.stdout
    content, report = read_content(content_dir, registry)
    if content is None:
        for problem in report.problems:
            print(problem, file=stream)
        return 1
    summary = f"OK: {len(content.messages)} messages, {content.tag_count} tags"
    print(summary, file=stream)
    start = today if today is not None else datetime.now(tz).date()
    for report_lines in reports:
        for line in report_lines(content, start, tz):
            print(line, file=stream)
    return 0
