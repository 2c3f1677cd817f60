"""Typed reading of one TOML table that remembers where it is, reports wrong types and unknown keys.

Parsers ask a :class:`Node` for the keys they understand (``node.text("state", max_chars=30)``); every
problem is reported with the file and the full key path (``channels[2].state``), and :meth:`Node.finish`
reports whatever keys nobody asked for, with a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from bot.content.problems import Reporter

_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (dict, "table"),
    (datetime, "datetime"),
    (date, "date"),
    (time, "time"),
)


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type (``bool`` is checked before ``int``)."""
    for cls, name in _TOML_TYPES:
        if isinstance(value, cls):
            return name
    return type(value).__name__


class Node:
    """A table in a content file: ``file`` as shown to operators, ``key`` its path (``""`` at top)."""

    def __init__(self, data: Mapping[str, Any], file: str, key: str, report: Reporter, root: Path) -> None:
        self.data = data
        self.file = file
        self.key = key
        self.report = report
        self.root = root
        self._seen: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def problem(self, name: str | None, reason: str) -> None:
        """Report a problem at ``name`` inside this table (``None``: the table itself)."""
        self.report.add(self.file, self.key if name is None else self.path(name), reason)

    def has(self, name: str) -> bool:
        self._seen.add(name)
        return name in self.data

    def _get(self, name: str, required: bool) -> Any:
        if not self.has(name):
            if required:
                self.problem(name, "is required")
            return None
        return self.data[name]

    def _typed(self, name: str, value: Any, cls: type, type_name: str) -> bool:
        if isinstance(value, cls) and not (cls is int and isinstance(value, bool)):
            return True
        self.problem(name, f"must be {type_name}, got {toml_type(value)}")
        return False

    def text(
        self,
        name: str,
        *,
        required: bool = False,
        max_chars: int | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_hint: str = "",
    ) -> str | None:
        """A non-empty string, optionally at most ``max_chars`` characters and matching ``pattern``."""
        value = self._get(name, required)
        if value is None or not self._typed(name, value, str, "a string"):
            return None
        return self.check_text(name, value, max_chars=max_chars, pattern=pattern, pattern_hint=pattern_hint)

    def check_text(
        self,
        name: str,
        value: str,
        *,
        max_chars: int | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_hint: str = "",
    ) -> str | None:
        if not value.strip():
            self.problem(name, "must not be empty")
            return None
        if max_chars is not None and len(value) > max_chars:
            self.problem(name, f"longer than {max_chars} characters ({len(value)})")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(name, f"{value!r} is not allowed: {pattern_hint}")
            return None
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
        value = self._get(name, required)
        if value is None or not self._typed(name, value, int, "an integer"):
            return None
        if minimum is not None and value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
            return None
        return int(value)

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, False)
        if value is None or not self._typed(name, value, bool, "true or false"):
            return default
        return bool(value)

    def strings(
        self,
        name: str,
        *,
        required: bool = False,
        max_items: int | None = None,
        max_chars: int | None = None,
    ) -> tuple[str, ...] | None:
        """A non-empty array of distinct non-empty strings."""
        value = self._get(name, required)
        if value is None or not self._typed(name, value, list, "an array of strings"):
            return None
        if not value:
            self.problem(name, "must not be empty")
            return None
        if max_items is not None and len(value) > max_items:
            self.problem(name, f"has {len(value)} items, at most {max_items} allowed")
            return None
        out: list[str] = []
        for i, item in enumerate(value):
            item_key = f"{name}[{i}]"
            if not self._typed(item_key, item, str, "a string"):
                return None
            if self.check_text(item_key, item, max_chars=max_chars) is None:
                return None
            if item in out:
                self.problem(item_key, f"{item!r} is listed twice")
                return None
            out.append(item)
        return tuple(out)

    def table(self, name: str) -> Node | None:
        value = self._get(name, False)
        if value is None or not self._typed(name, value, dict, "a table"):
            return None
        return Node(value, self.file, self.path(name), self.report, self.root)

    def tables(self, name: str, *, required: bool = False) -> list[Node]:
        """An array of tables (``[[name]]`` or ``name = [{…}, {…}]``), each a child node."""
        value = self._get(name, required)
        if value is None or not self._typed(name, value, list, "an array of tables"):
            return []
        nodes: list[Node] = []
        for i, item in enumerate(value):
            key = f"{name}[{i}]"
            if self._typed(key, item, dict, "a table"):
                nodes.append(Node(item, self.file, self.path(key), self.report, self.root))
        return nodes

    def finish(self) -> None:
        """Report every key that no parser asked for: a typo must never be silently ignored."""
        for name in self.data:
            if name in self._seen:
                continue
            known = sorted(self._seen)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            self.problem(name, f"unknown key ({hint})")
