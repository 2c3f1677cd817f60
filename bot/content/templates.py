"""Message text with ``{variable}`` placeholders, and ``hours`` time windows.

Placeholders use ``str.format`` syntax without its power: only the fixed names in
:data:`~bot.content.model.VARIABLES`, no attribute access, conversions or format specs. ``{{`` and
``}}`` write literal braces.

Deliberately not Jinja2 (or ``str.format`` on real objects): content files are written by operators, so a
template may only name a fixed variable — nothing to call, loop over or reach through — and every mistake
is caught by ``siyu-bot content check`` before anything is sent.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping

from bot.content.model import VARIABLES, Window

_FORMATTER = string.Formatter()
_WINDOW = re.compile(r"(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})")


class TemplateError(ValueError):
    pass


def segments(text: str, names: Mapping[str, object] = VARIABLES) -> Iterator[tuple[str, str | None]]:
    """``(literal, variable or None)`` pairs; raises TemplateError on anything but ``names``
    (the message variables unless a kind has its own, e.g. check-in replies' ``{streak}``)."""
    known = ", ".join("{" + n + "}" for n in sorted(names))
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise TemplateError(f"{exc}; write {{{{ and }}}} for literal braces") from None
    for literal, field, spec, conversion in parsed:
        if field is None:
            yield literal, None
            continue
        if not field:
            raise TemplateError(f"empty placeholder {{}}; known variables: {known}")
        if conversion or spec:
            raise TemplateError(f"placeholder {{{field}...}}: conversions and format specs are not supported")
        if field not in names:
            raise TemplateError(f"unknown variable {{{field}}} (known: {known})")
        yield literal, field


def variables_in(text: str, names: Mapping[str, object] = VARIABLES) -> frozenset[str]:
    return frozenset(name for _, name in segments(text, names) if name is not None)


def fill(
    text: str,
    values: Mapping[str, str | None],
    fallbacks: Mapping[str, str],
    names: Mapping[str, object] = VARIABLES,
) -> str:
    """Replace placeholders; a missing or blank value becomes the variable's fallback text."""
    out: list[str] = []
    for literal, name in segments(text, names):
        out.append(literal)
        if name is not None:
            value = values.get(name)
            out.append(value if value and value.strip() else fallbacks.get(name, ""))
    return "".join(out)


def parse_window(raw: str) -> Window:
    """``"08:00-12:00"``; ``"22:00-02:00"`` crosses midnight; ``24:00`` only as the end."""
    match = _WINDOW.fullmatch(raw.strip())
    if match is None:
        raise TemplateError(f'{raw!r} is not a time window like "08:00-12:00"')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise TemplateError(f"{raw!r} has an invalid time (00:00-23:59, or 24:00 as the end)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end % 1440:
        raise TemplateError(f"{raw!r} is empty (start equals end)")
    return Window(start, end)


def uncovered(windows: list[Window]) -> list[tuple[int, int]]:
    """Minute ranges of the day that no window covers."""
    covered = sorted(iv for w in windows for iv in w.intervals())
    gaps: list[tuple[int, int]] = []
    cursor = 0
    for lo, hi in covered:
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < 1440:
        gaps.append((cursor, 1440))
    return gaps
