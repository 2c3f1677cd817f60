"""Field readers shared by the SOP and interaction kinds, on top of :class:`~bot.content.node.Node`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from bot.content.model import Window
from bot.content.node import Node, toml_type
from bot.content.schedule import Delay, ScheduleError, parse_delay
from bot.content.templates import TemplateError, parse_window, variables_in

E = TypeVar("E", bound=StrEnum)

ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ID_HINT = "use 1-64 letters, digits, '_', '.' or '-'"


def choice(
    node: Node, name: str, enum: type[E], *, required: bool = True, allowed: tuple[E, ...] = (), what: str = ""
) -> E | None:
    """A string that must be one of ``allowed`` (default: every member of ``enum``); ``what`` names it."""
    raw = node.text(name, required=required)
    if raw is None:
        return None
    options = allowed or tuple(enum)
    found = next((o for o in options if o.value == raw), None)
    if found is None:
        node.problem(name, f"unknown {what or name} {raw!r} (known: {', '.join(o.value for o in options)})")
    return found


def delay(node: Node, name: str, *, required: bool = True) -> Delay | None:
    raw = node.text(name, required=required)
    if raw is None:
        return None
    try:
        return parse_delay(raw)
    except ScheduleError as exc:
        node.problem(name, str(exc))
        return None


def window(node: Node, name: str = "hours") -> Window | None:
    raw = node.text(name)
    if raw is None:
        return None
    try:
        return parse_window(raw)
    except TemplateError as exc:
        node.problem(name, str(exc))
        return None


def template(node: Node, name: str, names: Mapping[str, object], *, required: bool = False) -> str | None:
    """A text with ``{placeholders}`` from ``names`` only; leading/trailing blank lines removed."""
    raw = node.text(name, required=required)
    if raw is None:
        return None
    try:
        variables_in(raw, names)
    except TemplateError as exc:
        node.problem(name, str(exc))
        return None
    return raw.strip()


def aware_datetime(node: Node, name: str) -> datetime | None:
    """A TOML offset date-time (``2026-06-18T10:00:00+08:00``); a time without offset is refused."""
    if not node.has(name):
        node.problem(name, "is required")
        return None
    value = node.data[name]
    if not isinstance(value, datetime):
        node.problem(name, f"must be a date-time like 2026-06-18T10:00:00+08:00, got {toml_type(value)}")
        return None
    if value.tzinfo is None:
        node.problem(name, "needs a UTC offset, e.g. 2026-06-18T10:00:00+08:00 (Asia/Shanghai)")
        return None
    return value


def tag_refs(node: Node, name: str) -> tuple[str, ...]:
    """``"group/tag"`` references (resolved against tags.toml by a cross-check)."""
    return node.strings(name) or ()
