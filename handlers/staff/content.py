"""``content/staff.toml``: the 客户流失提醒 rule (who is told when a customer deletes a staff member).

::

    [loss_alerts]
    enabled = true
    via = ["app"]                 # app: message/send to the member; robot: the group robot of robot_chat_id
    robot_chat_id = "wrOgQh…"     # with "robot"; its webhook key lives in group_robots.toml (never content)
    quiet_hours = "22:00-08:00"   # nothing sent inside; held to the end of the window (false: none)
    digest = false                # true: one message per member a day at digest_at, listing the day's losses
    digest_at = "09:00"
    text = "客户「{customer}」删除了你（渠道：{channel}）。"   # {customer} {channel} {staff} {count}

A missing file means no alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from bot.content.fields import template, window
from bot.content.model import Window
from bot.content.node import Node
from bot.content.registry import FileKind, Registry, Section
from bot.content.templates import parse_window

VIA = ("app", "robot")
TEXT_VARIABLES: dict[str, object] = {"customer": None, "channel": None, "staff": None, "count": None}
TEXT_FALLBACKS = {"customer": "一位客户", "channel": "未归因", "staff": "", "count": "1"}
DEFAULT_TEXT = "客户「{customer}」删除了你（渠道：{channel}）。"
DEFAULT_QUIET = parse_window("22:00-08:00")
APP_TEXT_MAX_BYTES = 2048  # message/send text (docs/platform.md#app-messages)


@dataclass(frozen=True)
class LossAlerts:
    enabled: bool = False
    via: tuple[str, ...] = ("app",)
    robot_chat_id: str | None = None
    quiet_hours: Window | None = DEFAULT_QUIET
    digest: bool = False
    digest_at: time = time(9, 0)
    text: str = DEFAULT_TEXT


def _via(node: Node) -> tuple[str, ...]:
    via = tuple(node.strings("via") or ("app",))
    unknown = [v for v in via if v not in VIA]
    if unknown:
        node.problem("via", f"unknown {unknown} (use {', '.join(VIA)})")
    return tuple(v for v in via if v in VIA)


def _quiet(node: Node) -> Window | None:
    if node.data.get("quiet_hours") is False:
        node.has("quiet_hours")
        return None
    return window(node, "quiet_hours") if node.has("quiet_hours") else DEFAULT_QUIET


def _digest_at(node: Node) -> time:
    raw = node.text("digest_at")
    if raw is None:
        return time(9, 0)
    try:
        return time.fromisoformat(raw)
    except ValueError:
        node.problem("digest_at", f'{raw!r} is not a time of day like "09:00"')
        return time(9, 0)


def parse_loss_alerts(node: Node) -> LossAlerts | None:
    before = len(node.report.problems)
    enabled = node.flag("enabled", True)
    via = _via(node)
    chat = node.text("robot_chat_id", max_chars=64)
    quiet = _quiet(node)
    digest = node.flag("digest", False)
    digest_at = _digest_at(node)
    text = template(node, "text", TEXT_VARIABLES) or DEFAULT_TEXT
    node.finish()
    if "robot" in via and chat is None:
        node.problem("robot_chat_id", 'is required with via = ["robot"]')
    if len(text.encode()) > APP_TEXT_MAX_BYTES:
        node.problem("text", f"longer than {APP_TEXT_MAX_BYTES} bytes (an app message's limit)")
    if len(node.report.problems) > before:
        return None
    return LossAlerts(enabled, via, chat, quiet, digest, digest_at, text)


LOSS_ALERTS: Section[LossAlerts] = Section("loss_alerts", parse_loss_alerts, single=True)
STAFF_FILES = FileKind("staff", (LOSS_ALERTS,))
CONTENT = Registry().with_kind(STAFF_FILES)
