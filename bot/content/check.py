"""``siyu-bot content check``: every problem as ``file:key: reason``, or a summary and the mix report.

After the OK line come the SOP/interaction counts and the group posts' category mix for the next 30
days against the 3:3:3:1 guideline; ``warning:`` lines (e.g. a week that is mostly marketing) never
fail the check.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, tzinfo
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.content.kinds import DEFAULT_REGISTRY
from bot.content.loader import read_content
from bot.content.mix import mix_report
from bot.content.registry import Registry
from bot.content.store import Content

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def extras_summary(content: Content) -> str | None:
    """``SOP: 2 drips, 9 group posts · interactions: …`` when any of those kinds is present."""
    parts = [
        _plural(len(content.drips), "drip"),
        _plural(len(content.group_posts), "group post"),
        _plural(len(content.campaigns), "lottery campaign"),
        _plural(len(content.coupon_pools), "coupon pool"),
        _plural(len(content.keyword_rules), "keyword rule"),
        f"check-in {'on' if content.checkin is not None and content.checkin.enabled else 'off'}",
        f"referral {'on' if content.referral is not None and content.referral.enabled else 'off'}",
    ]
    present = content.drips or content.group_posts or content.campaigns or content.keyword_rules
    return None if not present and content.checkin is None and content.referral is None else "; ".join(parts)


def check_command(
    content_dir: str,
    out: TextIO | None = None,
    registry: Registry = DEFAULT_REGISTRY,
    *,
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
    summary = f"OK: {len(content.channels)} channels, {len(content.messages)} messages, {content.tag_count} tags"
    print(summary, file=stream)
    extras = extras_summary(content)
    if extras is not None:
        print(extras, file=stream)
    start = today if today is not None else datetime.now(tz).date()
    for line in mix_report(content, start, tz):
        print(line, file=stream)
    return 0
