"""Editing a content file field by field, keeping its comments and layout (the console's draft editor).

A TOML file becomes a list of :class:`Field` — every string, number, boolean and list of strings, each named
by the key the loader uses in its problems (``messages[3].variants[0].text``) — so a form can show each
problem next to its field. :func:`apply_edits` writes changed values back into the same text with tomlkit
(the one place it is used), so comments, order and the operator's formatting survive a console edit and
``content pull`` gives git a reviewable diff. Whether the result is valid content is the loader's job,
run on the whole draft: this module only refuses values of the wrong type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Bool, Float, Integer, String, Table

from bot.content.problems import Problem

Kind = Literal["text", "integer", "number", "boolean", "list"]
_TOKEN = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")
LONG_TEXT = 40


class EditError(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


@dataclass(frozen=True)
class Field:
    key: str  # as the loader names it in a problem: ``messages[3].variants[0].text``
    kind: Kind
    value: str | int | float | bool | tuple[str, ...]

    @property
    def label(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    @property
    def multiline(self) -> bool:
        return (
            self.kind == "text" and isinstance(self.value, str) and ("\n" in self.value or len(self.value) > LONG_TEXT)
        )

    @property
    def form_value(self) -> str:
        """The value as a form shows it (a list one item per line)."""
        if isinstance(self.value, tuple):
            return "\n".join(self.value)
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


def parse(text: str, file: str = "") -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise EditError(file or "file", f"not valid TOML: {exc}") from exc


def fields(text: str) -> list[Field]:
    """Every editable value of a TOML document, in file order."""
    return list(_walk(parse(text), ""))


def _walk(node: Mapping[str, Any], prefix: str) -> Iterator[Field]:
    for name, value in node.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(value, Table | dict):
            yield from _walk(value, key)
        elif isinstance(value, AoT) or (
            isinstance(value, Array | list) and value and all(isinstance(v, dict) for v in value)
        ):
            for i, item in enumerate(value):
                yield from _walk(item, f"{key}[{i}]")
        elif isinstance(value, Array | list):
            if all(isinstance(v, str) for v in value):
                yield Field(key, "list", tuple(str(v) for v in value))
        elif isinstance(value, Bool | bool):
            yield Field(key, "boolean", bool(value))
        elif isinstance(value, Integer | int):
            yield Field(key, "integer", int(value))
        elif isinstance(value, Float | float):
            yield Field(key, "number", float(value))
        elif isinstance(value, String | str):
            yield Field(key, "text", str(value))


def _tables(value: Any) -> bool:
    """An array of tables (``[[x]]`` or ``x = [{…}]``)."""
    return isinstance(value, AoT) or (
        isinstance(value, Array | list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _steps(key: str) -> list[str | int]:
    steps: list[str | int] = []
    for part in key.split("."):
        match = _TOKEN.fullmatch(part)
        if match is None:
            raise EditError(key, "not a key of this file")
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    return steps


def _container(doc: Any, key: str) -> tuple[Any, str | int]:
    steps = _steps(key)
    node = doc
    try:
        for step in steps[:-1]:
            node = node[step]
        node[steps[-1]]  # the value must exist: edits change values, they add no keys
    except (KeyError, IndexError, TypeError) as exc:
        raise EditError(key, "not a key of this file") from exc
    return node, steps[-1]


def _coerce(key: str, current: Any, raw: str) -> Any:
    if isinstance(current, Bool | bool):
        lowered = raw.strip().lower()
        if lowered not in {"true", "false", "on", "off", "1", "0"}:
            raise EditError(key, "must be true or false")
        return lowered in {"true", "on", "1"}
    if isinstance(current, Integer | int):
        try:
            return int(raw.strip())
        except ValueError as exc:
            raise EditError(key, f"must be a whole number, got {raw.strip()!r}") from exc
    if isinstance(current, Float | float):
        try:
            return float(raw.strip())
        except ValueError as exc:
            raise EditError(key, f"must be a number, got {raw.strip()!r}") from exc
    if isinstance(current, Array | list):
        items = [item.strip() for item in re.split(r"[\n,，]", raw) if item.strip()]
        array = tomlkit.array()
        array.extend(items)
        return array
    text = raw.replace("\r\n", "\n")
    return tomlkit.string(text, multiline="\n" in text)


def apply_edits(text: str, edits: Mapping[str, str], file: str = "") -> str:
    """``text`` with each field of ``edits`` (key → the form's raw value) changed; every bad value is an
    :class:`EditError` (the first), and then nothing is changed."""
    doc = parse(text, file)
    for key, raw in edits.items():
        container, last = _container(doc, key)
        current = container[last]
        if isinstance(current, Table | AoT | dict) or (
            isinstance(current, Array | list) and not all(isinstance(v, str) for v in current)
        ):
            raise EditError(key, "is not a single value")
        if _same(current, raw):
            continue
        container[last] = _coerce(key, current, raw)
    return tomlkit.dumps(doc)


def _same(current: Any, raw: str) -> bool:
    if isinstance(current, Array | list):
        return [str(v) for v in current] == [item.strip() for item in re.split(r"[\n,，]", raw) if item.strip()]
    if isinstance(current, Bool | bool):
        return ("true" if current else "false") == raw.strip().lower()
    if isinstance(current, String | str):
        return str(current) == raw.replace("\r\n", "\n")
    return str(current) == raw.strip()


def problems_by_field(problems: Sequence[Problem], file: str, keys: Sequence[str]) -> dict[str, list[str]]:
    """The problems of ``file`` placed on the field they are about (``tags[1]`` on ``tags``; a problem about a
    whole table on its first field); those that fit no field are under ``""``."""
    placed: dict[str, list[str]] = {}
    for problem in problems:
        if problem.file != file:
            continue
        target = next((k for k in keys if problem.key == k or problem.key.startswith((f"{k}[", f"{k}."))), None)
        if target is None:
            target = next((k for k in keys if problem.key and k.startswith((f"{problem.key}.", f"{problem.key}["))), "")
        placed.setdefault(target, []).append(problem.reason)
    return placed
