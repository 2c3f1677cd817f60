"""``[checkin]`` in ``checkin.toml``: daily check-in (签到) points, streak bonuses, milestones, replies.

One check-in per customer per local day (configured timezone). Replies may use ``{streak}``,
``{points}`` and ``{balance}``; a milestone's ``text`` is added to the success reply on the day the
streak reaches it.
"""

from __future__ import annotations

from bot.content.fields import template
from bot.content.node import Node
from bot.content.registry import Section
from handlers.interactions.content.model import CHECKIN_VARIABLES, Checkin, CheckinReplies, Milestone, StreakBonus
from handlers.interactions.content.rewards import parse_reward

MAX_LEADERBOARD = 100
MAX_STREAK = 3660


def _replies(node: Node) -> CheckinReplies | None:
    table = node.table("replies")
    if table is None:
        if "replies" not in node.data:
            node.problem("replies", "is required: success, already, streak_broken")
        return None
    success = template(table, "success", CHECKIN_VARIABLES, required=True)
    already = template(table, "already", CHECKIN_VARIABLES, required=True)
    broken = template(table, "streak_broken", CHECKIN_VARIABLES, required=True)
    table.finish()
    if success is None or already is None or broken is None:
        return None
    return CheckinReplies(success, already, broken)


def _bonuses(node: Node) -> tuple[StreakBonus, ...] | None:
    out: list[StreakBonus] = []
    ok = True
    for item in node.tables("streak_bonuses"):
        days = item.integer("from_streak", required=True, minimum=2)
        extra = item.integer("extra_points", required=True, minimum=1)
        item.finish()
        if days is None or extra is None:
            ok = False
        elif any(b.from_streak == days for b in out):
            item.problem("from_streak", f"another bonus already starts at {days}")
            ok = False
        else:
            out.append(StreakBonus(days, extra))
    return tuple(sorted(out, key=lambda b: b.from_streak)) if ok else None


def _milestone(item: Node) -> Milestone | None:
    before = len(item.report.problems)
    streak = item.integer("streak", required=True, minimum=1)
    text = template(item, "text", CHECKIN_VARIABLES)
    once = item.flag("once", False)
    reward = parse_reward(item)
    item.finish()
    if streak is not None and streak > MAX_STREAK:
        item.problem("streak", f"more than {MAX_STREAK} days")
    if streak is None or reward is None or len(item.report.problems) > before:
        return None
    return Milestone(streak, reward, text, once)


def _milestones(node: Node) -> tuple[Milestone, ...] | None:
    out: list[Milestone] = []
    ok = True
    for item in node.tables("milestones"):
        milestone = _milestone(item)
        if milestone is None:
            ok = False
        elif any(m.streak == milestone.streak for m in out):
            item.problem("streak", f"another milestone is at streak {milestone.streak}")
            ok = False
        else:
            out.append(milestone)
    return tuple(sorted(out, key=lambda m: m.streak)) if ok else None


def parse_checkin(node: Node) -> Checkin | None:
    before = len(node.report.problems)
    enabled = node.flag("enabled", True)
    points = node.integer("points_per_day", required=True, minimum=0)
    board = node.integer("leaderboard_size", minimum=0)
    replies = _replies(node)
    bonuses = _bonuses(node)
    milestones = _milestones(node)
    node.finish()
    if board is not None and board > MAX_LEADERBOARD:
        node.problem("leaderboard_size", f"at most {MAX_LEADERBOARD}")
    if points is None or replies is None or bonuses is None or milestones is None:
        return None
    if len(node.report.problems) > before:
        return None
    return Checkin(enabled, points, bonuses, milestones, replies, 10 if board is None else board)


CHECKIN: Section[Checkin] = Section("checkin", parse_checkin, single=True)
