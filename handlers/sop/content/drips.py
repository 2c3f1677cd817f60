"""``[[drips]]`` in ``drips.toml`` / ``drips/*.toml``: per-customer journeys started by a trigger.

Each step's delay counts from the trigger (``0m``, ``3h``, ``6h`` = now, +3 h, +6 h), so delays must
not decrease. Steps stop for a customer when any stop condition becomes true; after the last step the
customer gets ``then_tags`` and is enrolled in ``then_start``. References (messages, channels, tags,
drips) and platform fit are checked in :mod:`handlers.sop.content.checks`.
"""

from __future__ import annotations

from bot.content.fields import ID, ID_HINT, choice, delay, tag_refs
from bot.content.node import Node
from bot.content.registry import Section
from handlers.sop.content.model import (
    DRIP_DELIVERIES,
    Category,
    Delivery,
    Drip,
    DripStep,
    StopCondition,
    StopKind,
    Trigger,
    TriggerKind,
)

MAX_STEPS = 30
_CHANNEL_TRIGGERS = (TriggerKind.FRIEND_ADDED, TriggerKind.FOLLOWED, TriggerKind.JOINED_GROUP)


def _trigger(node: Node) -> Trigger | None:
    table = node.table("trigger")
    if table is None:
        if "trigger" not in node.data:
            node.problem("trigger", 'is required, e.g. trigger = { on = "followed" }')
        return None
    kind = choice(table, "on", TriggerKind, what="trigger")
    channels = table.strings("channels") or ()
    tag = table.text("tag")
    table.finish()
    if kind is None:
        return None
    if channels and kind not in _CHANNEL_TRIGGERS:
        table.problem("channels", f"only for {', '.join(k.value for k in _CHANNEL_TRIGGERS)} triggers")
        return None
    if (kind is TriggerKind.TAG_ADDED) != (tag is not None):
        reason = "is required for tag_added" if tag is None else "only for tag_added triggers"
        table.problem("tag", reason)
        return None
    return Trigger(kind, channels, tag)


def _step(node: Node, position: int) -> DripStep | None:
    step_id = node.text("id", pattern=ID, pattern_hint=ID_HINT) if node.has("id") else str(position)
    when = delay(node, "delay")
    message = node.text("message", required=True)
    delivery = choice(node, "delivery", Delivery, allowed=DRIP_DELIVERIES)
    category = choice(node, "category", Category)
    node.finish()
    if step_id is None or when is None or message is None or delivery is None or category is None:
        return None
    return DripStep(step_id, when, message, delivery, category)


def _steps(node: Node) -> tuple[DripStep, ...] | None:
    nodes = node.tables("steps", required=True)
    if not nodes:
        if node.data.get("steps") == []:
            node.problem("steps", "needs at least one step")
        return None
    if len(nodes) > MAX_STEPS:
        node.problem("steps", f"{len(nodes)} steps, at most {MAX_STEPS}")
        return None
    parsed = [(n, _step(n, i + 1)) for i, n in enumerate(nodes)]
    steps = [s for _, s in parsed if s is not None]
    if len(steps) != len(nodes):
        return None
    _check_order(parsed)
    return tuple(steps)


def _check_order(parsed: list[tuple[Node, DripStep | None]]) -> None:
    """Delays count from the trigger: a later step must never be due before an earlier one."""
    seen: set[str] = set()
    previous: DripStep | None = None
    for node, step in parsed:
        assert step is not None
        if step.id in seen:
            node.problem("id", f"duplicate step id {step.id!r}")
        seen.add(step.id)
        if previous is not None:
            earliest, _ = step.delay.bounds()
            _, latest = previous.delay.bounds()
            if earliest < latest:
                node.problem(
                    "delay",
                    f"{step.delay} can come before the previous step's {previous.delay} "
                    "(delays count from the trigger and must not decrease)",
                )
        previous = step


def _stop_conditions(node: Node) -> tuple[StopCondition, ...] | None:
    raw = node.strings("stop_when") or ()
    out: list[StopCondition] = []
    known = ", ".join([*(k.value for k in StopKind if k is not StopKind.TAG), "tag:<group/name>"])
    for i, item in enumerate(raw):
        name, sep, tag = item.partition(":")
        if sep and name == StopKind.TAG.value and tag:
            out.append(StopCondition(StopKind.TAG, tag))
        elif not sep and item in {k.value for k in StopKind} and item != StopKind.TAG.value:
            out.append(StopCondition(StopKind(item)))
        else:
            node.problem(f"stop_when[{i}]", f"unknown stop condition {item!r} (known: {known})")
            return None
    return tuple(out)


def parse_drip(node: Node) -> Drip | None:
    before = len(node.report.problems)
    drip_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
    name = node.text("name", required=True, max_chars=60)
    trigger = _trigger(node)
    steps = _steps(node)
    stop_when = _stop_conditions(node)
    then = node.table("then")
    then_tags = tag_refs(then, "tags") if then is not None else ()
    then_start = then.text("start", pattern=ID, pattern_hint=ID_HINT) if then is not None else None
    if then is not None:
        then.finish()
    enabled = node.flag("enabled", True)
    late_entry = node.flag("late_entry", False)
    node.finish()
    if drip_id is None or name is None or trigger is None or steps is None or stop_when is None:
        return None
    if len(node.report.problems) > before:
        return None
    return Drip(drip_id, name, trigger, steps, stop_when, then_tags, then_start, enabled, late_entry)


DRIPS: Section[Drip] = Section("drips", parse_drip, ident=("id", lambda d: d.id))
