"""``[[channels]]``: one traffic source each, with its code, platform details, tags and welcome.

Limits (docs/platform.md#channel-codes): ``state`` ≤ 30 characters (联系我 and 加入群聊), ``scene_str`` 1–64 (mp QR),
``chat_id_list`` ≤ 5 groups per join-way, ``remark`` (our ``name``) ≤ 30, ``room_base_name`` ≤ 40,
≤ 100 members on a multi-member 联系我 code.
"""

from __future__ import annotations

import re

from bot.content.model import WEEKDAYS, Platform
from bot.content.node import Node
from bot.content.registry import Section
from handlers.growth.content.model import Channel, ContactWay, JoinWay

CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CODE_HINT = "use 1-64 letters, digits, '_' or '-'"
MAX_STATE = 30
MAX_SCENE_STR = 64
MAX_CHAT_IDS = 5
MAX_STAFF = 100
_FRIEND_KEYS = ("staff", "schedule", "daily_limit", "backup_staff", "skip_verify")
_GROUP_KEYS = ("chat_ids", "auto_create_room", "room_base_name", "room_base_id")


def _state(node: Node, code: str, platform: Platform) -> str | None:
    """``state`` defaults to the code; a default that is too long is reported at ``code``."""
    if not platform.is_wecom:
        if node.has("state"):
            node.problem("state", "only for wecom_friend/wecom_group channels; mp channels use scene_str")
        return None
    if node.has("state"):
        return node.text("state", max_chars=MAX_STATE)
    if len(code) > MAX_STATE:
        node.problem("code", f"used as state, longer than {MAX_STATE} characters ({len(code)}); set state")
        return None
    return code


def _scene_str(node: Node, code: str, platform: Platform) -> str | None:
    if platform.is_wecom:
        if node.has("scene_str"):
            node.problem("scene_str", "only for mp channels; WeCom channels use state")
        return None
    if node.has("scene_str"):
        return node.text("scene_str", max_chars=MAX_SCENE_STR)
    return code


def _platform(node: Node) -> Platform | None:
    raw = node.text("platform", required=True)
    if raw is None:
        return None
    try:
        return Platform(raw)
    except ValueError:
        known = ", ".join(p.value for p in Platform)
        node.problem("platform", f"unknown platform {raw!r} (known: {known})")
        return None


def _reject(node: Node, keys: tuple[str, ...], platform: Platform, needs: Platform) -> None:
    for name in keys:
        if node.has(name):
            node.problem(name, f"only for {needs.value} channels, this one is {platform.value}")


def _schedule(node: Node) -> tuple[tuple[str, ...], ...] | None:
    table = node.table("schedule")
    if table is None:
        return None
    days = tuple(table.strings(day, max_items=MAX_STAFF) or () for day in WEEKDAYS)
    table.finish()
    return days


def _contact_way(node: Node) -> ContactWay:
    """联系我 fields: staff (required), schedule, daily limit with backup staff."""
    daily_limit = node.integer("daily_limit", minimum=1)
    backup = node.strings("backup_staff", max_items=MAX_STAFF) or ()
    if backup and not node.has("daily_limit"):
        node.problem("backup_staff", "needs daily_limit: backup staff take over when the limit is reached")
    return ContactWay(
        staff=node.strings("staff", required=True, max_items=MAX_STAFF) or (),
        schedule=_schedule(node),
        daily_limit=daily_limit,
        backup_staff=backup,
        skip_verify=node.flag("skip_verify", True),
    )


def _join_way(node: Node) -> JoinWay:
    """加入群聊 fields: up to 5 chat_ids, auto-created rooms when full."""
    return JoinWay(
        chat_ids=node.strings("chat_ids", required=True, max_items=MAX_CHAT_IDS) or (),
        auto_create_room=node.flag("auto_create_room", True),
        room_base_name=node.text("room_base_name", max_chars=40),
        room_base_id=node.integer("room_base_id", minimum=1),
    )


def parse_channel(node: Node) -> Channel | None:
    before = len(node.report.problems)
    code = node.text("code", required=True, pattern=CODE, pattern_hint=CODE_HINT)
    name = node.text("name", required=True, max_chars=30)
    platform = _platform(node)
    welcome = node.text("welcome")
    tags = node.strings("tags") or ()
    default = node.flag("default", False)
    if code is None or platform is None:
        node.finish()
        return None
    state = _state(node, code, platform)
    scene_str = _scene_str(node, code, platform)
    friend = platform is Platform.WECOM_FRIEND
    group = platform is Platform.WECOM_GROUP
    contact_way = _contact_way(node) if friend else None
    join_way = _join_way(node) if group else None
    if not friend:
        _reject(node, _FRIEND_KEYS, platform, Platform.WECOM_FRIEND)
    if not group:
        _reject(node, _GROUP_KEYS, platform, Platform.WECOM_GROUP)
    node.finish()
    if name is None or len(node.report.problems) > before:
        return None
    return Channel(code, name, platform, state, scene_str, contact_way, join_way, tags, welcome, default)


CHANNELS: Section[Channel] = Section("channels", parse_channel, ident=("code", lambda c: c.code))
