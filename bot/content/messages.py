"""``[[messages]]`` with A/B and time-of-day variants, and the ``[fallbacks]`` for unknown variables.

A message is either one variant written inline (``text`` and ``attachments`` on the message, variant id
``default``) or a list of ``[[messages.variants]]``. Variants with ``hours`` apply inside that window
(configured timezone); variants without ``hours`` apply when no window matches. Variants sharing the same
window (or all without one) split traffic by ``weight``. Distinct windows must not overlap, and when no
variant is without ``hours`` the windows must cover the whole day.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from bot.content.attachments import parse_attachments
from bot.content.model import VARIABLES, Attachment, Message, Variant, Window, format_minute
from bot.content.node import Node, toml_type
from bot.content.registry import Section
from bot.content.templates import TemplateError, parse_window, uncovered, variables_in

ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ID_HINT = "use 1-64 letters, digits, '_', '.' or '-'"
MAX_TEXT_BYTES = 4000  # send_welcome_msg text.content (docs/platform.md#welcome-messages)
_VARIANT_KEYS = ("text", "attachments")
MAX_FALLBACK = 30


def _text(node: Node) -> tuple[str, frozenset[str]] | None:
    text = node.data.get("text")
    if text is None:
        node.has("text")
        return "", frozenset()
    value = node.text("text")
    if value is None:
        return None
    if len(value.encode()) > MAX_TEXT_BYTES:
        node.problem("text", f"longer than {MAX_TEXT_BYTES} bytes ({len(value.encode())})")
        return None
    try:
        return value.strip(), variables_in(value)
    except TemplateError as exc:
        node.problem("text", str(exc))
        return None


def _window(node: Node) -> Window | None:
    raw = node.text("hours")
    if raw is None:
        return None
    try:
        return parse_window(raw)
    except TemplateError as exc:
        node.problem("hours", str(exc))
        return None


def _variant(node: Node, message_id: str, variant_id: str | None) -> Variant | None:
    """Parse the variant keys of ``node`` (a ``[[messages.variants]]`` entry or the message itself)."""
    before = len(node.report.problems)
    if variant_id is None:
        variant_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
        weight = node.integer("weight", minimum=1)
        window = _window(node)
    else:
        weight, window = 1, None
    text = _text(node)
    attachments: tuple[Attachment, ...] | None = parse_attachments(node)
    if text is not None and not text[0] and not attachments and attachments is not None:
        node.problem(None, "needs text or at least one attachment")
    if len(node.report.problems) > before or variant_id is None or text is None or attachments is None:
        return None
    return Variant(message_id, variant_id, weight or 1, window, text[0], attachments, text[1])


def _check_windows(node: Node, variants: list[tuple[Node, Variant]], coverage: bool) -> None:
    seen: list[tuple[Window, str]] = []
    for vnode, variant in variants:
        window = variant.window
        if window is None:
            continue
        for other, other_id in seen:
            if other != window and other.overlaps(window):
                vnode.problem("hours", f"{window} overlaps {other} of variant {other_id!r}")
        seen.append((window, variant.id))
    if coverage and seen and all(v.window is not None for _, v in variants):
        gaps = uncovered([w for w, _ in seen])
        if gaps:
            text = ", ".join(f"{format_minute(a)}-{format_minute(b)}" for a, b in gaps)
            node.problem("variants", f"hours leave {text} uncovered; add a variant without hours")


def _variants(node: Node, message_id: str) -> tuple[Variant, ...] | None:
    vnodes = node.tables("variants")
    inline = [k for k in _VARIANT_KEYS if k in node.data]
    if vnodes and inline:
        for key in inline:
            node.has(key)
            node.problem(key, "move it into each [[messages.variants]]: a message has variants or not")
        return None
    if not vnodes:
        single = _variant(node, message_id, "default")
        return None if single is None else (single,)
    parsed: list[tuple[Node, Variant]] = []
    for vnode in vnodes:
        variant = _variant(vnode, message_id, None)
        vnode.finish()
        if variant is not None:
            if any(v.id == variant.id for _, v in parsed):
                vnode.problem("id", f"duplicate variant id {variant.id!r}")
            parsed.append((vnode, variant))
    _check_windows(node, parsed, coverage=len(parsed) == len(vnodes))
    return tuple(v for _, v in parsed) if len(parsed) == len(vnodes) else None


def parse_message(node: Node) -> Message | None:
    before = len(node.report.problems)
    message_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
    name = node.text("name")
    variants = _variants(node, message_id or "?") if message_id is not None else None
    node.finish()
    if message_id is None or variants is None or len(node.report.problems) > before:
        return None
    return Message(message_id, name, variants)


def parse_fallbacks(node: Node) -> Mapping[str, str] | None:
    """``[fallbacks]``: the neutral text used when a variable's value is not known (yet)."""
    out: dict[str, str] = {}
    for name in VARIABLES:
        if not node.has(name):
            continue
        value = node.data[name]
        if not isinstance(value, str):
            node.problem(name, f"must be a string, got {toml_type(value)}")
        elif len(value) > MAX_FALLBACK:
            node.problem(name, f"longer than {MAX_FALLBACK} characters ({len(value)})")
        else:
            out[name] = value
    node.finish()
    return MappingProxyType(out)


MESSAGES: Section[Message] = Section("messages", parse_message, ident=("id", lambda m: m.id))
FALLBACKS: Section[Mapping[str, str]] = Section("fallbacks", parse_fallbacks, single=True)
