"""``[[keywords]]`` in ``keywords.toml`` / ``keywords/*.toml``: keyword replies in OA chat and 微信客服.

A rule matches the customer's text (``exact`` or ``contains``: trimmed and case-insensitive; ``regex``:
``re.search`` as written) on its ``platforms`` inside its ``hours``; the highest ``priority`` wins,
then file order. It answers with exactly one of ``reply`` (a message id), ``text`` (inline) or
``action`` (``checkin`` or ``lottery:<campaign id>``).
"""

from __future__ import annotations

import re

from bot.content.fields import ID, ID_HINT, choice, template, window
from bot.content.model import VARIABLES
from bot.content.node import Node
from bot.content.registry import Section
from handlers.interactions.content.model import ActionKind, KeywordRule, MatchKind

PLATFORMS = ("mp", "kf")
MAX_PATTERN = 200
_ANSWERS = ("reply", "text", "action")


def _regex(node: Node, pattern: str) -> re.Pattern[str] | None:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        node.problem("pattern", f"not a valid regular expression: {exc}")
        return None
    if compiled.search("") is not None:
        node.problem("pattern", f"{pattern!r} matches an empty message, so it would answer everything")
        return None
    return compiled


def _platforms(node: Node) -> frozenset[str] | None:
    raw = node.strings("platforms") or PLATFORMS
    for i, platform in enumerate(raw):
        if platform not in PLATFORMS:
            node.problem(f"platforms[{i}]", f"unknown platform {platform!r} (known: mp, kf)")
            return None
    return frozenset(raw)


def _action(node: Node) -> tuple[ActionKind | None, str | None, bool]:
    raw = node.text("action")
    if raw is None:
        return None, None, not node.has("action")
    if raw == ActionKind.CHECKIN.value:
        return ActionKind.CHECKIN, None, True
    name, sep, campaign = raw.partition(":")
    if sep and name == ActionKind.LOTTERY.value and ID.fullmatch(campaign):
        return ActionKind.LOTTERY, campaign, True
    node.problem("action", f'unknown action {raw!r} (known: "checkin", "lottery:<campaign id>")')
    return None, None, False


def _answer(node: Node) -> tuple[str | None, str | None, ActionKind | None, str | None] | None:
    given = [k for k in _ANSWERS if k in node.data]
    reply = node.text("reply", pattern=ID, pattern_hint=ID_HINT)
    text = template(node, "text", VARIABLES)
    action, campaign, ok = _action(node)
    if len(given) != 1:
        node.problem(None, f"needs exactly one of reply, text, action (got {', '.join(given) or 'none'})")
        return None
    if not ok or (reply is None and text is None and action is None):
        return None
    return reply, text, action, campaign


def parse_keyword(node: Node) -> KeywordRule | None:
    before = len(node.report.problems)
    rule_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
    match = choice(node, "match", MatchKind, what="match kind")
    pattern = node.text("pattern", required=True, max_chars=MAX_PATTERN)
    regex = _regex(node, pattern) if match is MatchKind.REGEX and pattern is not None else None
    priority = node.integer("priority")
    platforms = _platforms(node)
    hours = window(node)
    answer = _answer(node)
    node.finish()
    if rule_id is None or match is None or pattern is None or platforms is None or answer is None:
        return None
    if len(node.report.problems) > before:
        return None
    reply, text, action, campaign = answer
    return KeywordRule(
        rule_id,
        match,
        pattern if regex else pattern.strip(),
        priority or 0,
        platforms,
        hours,
        reply,
        text,
        action,
        campaign,
        regex,
    )


KEYWORDS: Section[KeywordRule] = Section("keywords", parse_keyword, ident=("id", lambda r: r.id))
