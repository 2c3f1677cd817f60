"""``[budget]`` in ``budget.toml``: the contact budget shared by every automated send.

Every key is optional; a missing file means the defaults of :class:`~handlers.sop.content.model.Budget`
(quiet hours 22:00-08:00, 1 marketing and 3 automated messages per customer per day, 10 per week,
fires more than 30 minutes late are missed, group-send quota "days in the month").
"""

from __future__ import annotations

from datetime import timedelta

from bot.content.fields import choice, window
from bot.content.node import Node
from bot.content.registry import Section
from bot.content.schedule import ScheduleError, parse_delay
from handlers.sop.content.model import Budget, QuotaPolicy

DEFAULT_BUDGET = Budget()
MAX_MISSED_AFTER = timedelta(days=1)


def _missed_after(node: Node) -> timedelta | None:
    raw = node.text("missed_after")
    if raw is None:
        return DEFAULT_BUDGET.missed_after if not node.has("missed_after") else None
    try:
        parsed = parse_delay(raw)
    except ScheduleError as exc:
        node.problem("missed_after", str(exc))
        return None
    if parsed.after is None or not timedelta(minutes=1) <= parsed.after <= MAX_MISSED_AFTER:
        node.problem("missed_after", f'{raw!r}: use a duration from "1m" to "1d", e.g. "30m"')
        return None
    return parsed.after


def _quiet_hours(node: Node) -> tuple[bool, Budget]:
    """``quiet_hours = "22:00-08:00"``; ``quiet_hours = false`` turns them off."""
    if node.data.get("quiet_hours") is False:
        node.has("quiet_hours")
        return True, Budget(quiet_hours=None)
    if not node.has("quiet_hours"):
        return True, DEFAULT_BUDGET
    parsed = window(node, "quiet_hours")
    return parsed is not None, Budget(quiet_hours=parsed)


def _counts(node: Node) -> tuple[int, int, int]:
    marketing = node.integer("max_marketing_per_day", minimum=0)
    daily = node.integer("max_automated_per_day", minimum=1)
    weekly = node.integer("max_automated_per_week", minimum=1)
    marketing = DEFAULT_BUDGET.max_marketing_per_day if marketing is None else marketing
    daily = DEFAULT_BUDGET.max_automated_per_day if daily is None else daily
    weekly = DEFAULT_BUDGET.max_automated_per_week if weekly is None else weekly
    if marketing > daily:
        node.problem("max_marketing_per_day", f"{marketing} is more than max_automated_per_day ({daily})")
    if daily > weekly:
        node.problem("max_automated_per_day", f"{daily} is more than max_automated_per_week ({weekly})")
    return marketing, daily, weekly


def parse_budget(node: Node) -> Budget | None:
    before = len(node.report.problems)
    ok, quiet = _quiet_hours(node)
    marketing, daily, weekly = _counts(node)
    missed = _missed_after(node)
    quota = choice(node, "group_send_quota", QuotaPolicy, required=False, what="quota policy")
    node.finish()
    if not ok or missed is None or len(node.report.problems) > before:
        return None
    return Budget(
        quiet_hours=quiet.quiet_hours,
        max_marketing_per_day=marketing,
        max_automated_per_day=daily,
        max_automated_per_week=weekly,
        missed_after=missed,
        group_send_quota=quota or DEFAULT_BUDGET.group_send_quota,
    )


BUDGET: Section[Budget] = Section("budget", parse_budget, single=True)
