"""``[[group_posts]]`` in ``group_sop.toml`` / ``group_sop/*.toml``: scheduled posts to customer groups.

A post has exactly one schedule: ``cron`` (5 fields, configured timezone), ``dates`` (a calendar of
``"YYYY-MM-DD HH:MM"``) or ``after`` + ``from`` (``"day 3 10:00"`` after ``group_created`` or
``member_joined``). ``targets`` picks groups; ``category`` feeds the 3:3:3:1 mix report.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.content.fields import ID, ID_HINT, choice, delay, tag_refs
from bot.content.node import Node
from bot.content.registry import Section
from bot.content.schedule import CronSchedule, DatesSchedule, ScheduleError, cron_trigger, parse_local_datetime
from handlers.sop.content.model import (
    GROUP_DELIVERIES,
    Anchor,
    Category,
    Delivery,
    GroupPost,
    RelativeSchedule,
    Schedule,
    Targets,
)

MAX_DATES = 366
MAX_CHAT_IDS = 2000  # add_msg_template chat_id_list (docs/platform.md#group-send-tasks)
_SCHEDULE_KEYS = ("cron", "dates", "after")


def _cron(node: Node) -> CronSchedule | None:
    expr = node.text("cron")
    if expr is None:
        return None
    try:
        cron_trigger(expr, UTC)
    except ScheduleError as exc:
        node.problem("cron", str(exc))
        return None
    return CronSchedule(" ".join(expr.split()))


def _dates(node: Node) -> DatesSchedule | None:
    raw = node.strings("dates", max_items=MAX_DATES)
    if raw is None:
        return None
    out: list[datetime] = []
    for i, item in enumerate(raw):
        try:
            out.append(parse_local_datetime(item))
        except ScheduleError as exc:
            node.problem(f"dates[{i}]", str(exc))
            return None
    return DatesSchedule(tuple(sorted(out)))


def _relative(node: Node) -> RelativeSchedule | None:
    when = delay(node, "after")
    anchor = choice(node, "from", Anchor, what="anchor")
    return None if when is None or anchor is None else RelativeSchedule(when, anchor)


def _schedule(node: Node) -> Schedule | None:
    given = [k for k in _SCHEDULE_KEYS if k in node.data]
    if len(given) != 1:
        node.problem(None, f"needs exactly one schedule: cron, dates or after (+ from); got {len(given) or 'none'}")
        for key in given:
            node.has(key)
        node.has("from")
        return None
    if given[0] != "after" and node.has("from"):
        node.problem("from", "only with after")
    if given[0] == "cron":
        return _cron(node)
    return _dates(node) if given[0] == "dates" else _relative(node)


def _targets(node: Node) -> Targets | None:
    table = node.table("targets")
    if table is None:
        if "targets" not in node.data:
            node.problem("targets", "is required: tags, names, owners and/or chat_ids")
        return None
    targets = Targets(
        tags=tag_refs(table, "tags"),
        names=table.strings("names") or (),
        owners=table.strings("owners") or (),
        chat_ids=table.strings("chat_ids", max_items=MAX_CHAT_IDS) or (),
    )
    table.finish()
    if not (targets.tags or targets.names or targets.owners or targets.chat_ids):
        table.problem(None, "needs at least one of tags, names, owners, chat_ids")
        return None
    return targets


def parse_group_post(node: Node) -> GroupPost | None:
    before = len(node.report.problems)
    post_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
    name = node.text("name", max_chars=60)
    schedule = _schedule(node)
    targets = _targets(node)
    delivery = choice(node, "delivery", Delivery, allowed=GROUP_DELIVERIES)
    category = choice(node, "category", Category)
    message = node.text("message", required=True)
    enabled = node.flag("enabled", True)
    node.finish()
    if post_id is None or schedule is None or targets is None or delivery is None or category is None:
        return None
    if message is None or len(node.report.problems) > before:
        return None
    return GroupPost(post_id, name, schedule, targets, delivery, category, message, enabled)


GROUP_POSTS: Section[GroupPost] = Section("group_posts", parse_group_post, ident=("id", lambda p: p.id))
