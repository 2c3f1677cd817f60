"""Cross-checks for drips and group posts: references, platform fit, circular ``then`` chains."""

from __future__ import annotations

from bot.content.fit import MP_EVENT_MESSAGES, send_count, tag_platforms, tag_reason
from bot.content.messages import MESSAGES
from bot.content.model import Message, Platform
from bot.content.problems import Reporter
from bot.content.registry import Draft, Located
from handlers.growth.content.channels import CHANNELS
from handlers.sop.content.drips import DRIPS
from handlers.sop.content.fit import DELIVERY_PLATFORMS, delivery_problem
from handlers.sop.content.group_sop import GROUP_POSTS
from handlers.sop.content.model import Delivery, Drip, DripStep, StopKind, TriggerKind

_TRIGGER_CHANNEL: dict[TriggerKind, Platform] = {
    TriggerKind.FRIEND_ADDED: Platform.WECOM_FRIEND,
    TriggerKind.FOLLOWED: Platform.MP,
    TriggerKind.JOINED_GROUP: Platform.WECOM_GROUP,
}


def _message(draft: Draft, message_id: str) -> tuple[Message | None, str | None]:
    """The message, or the reason it is missing (None when it failed to parse: reported there)."""
    found = next((m.value for m in draft.get(MESSAGES) if m.value.id == message_id), None)
    if found is not None or draft.may_exist(MESSAGES, message_id):
        return found, None
    return None, f"message {message_id!r} not found"


def _trigger_problems(located: Located[Drip], draft: Draft, report: Reporter) -> None:
    drip, key = located.value, f"{located.key}.trigger"
    channels = {c.value.code: c.value for c in draft.get(CHANNELS)}
    for i, code in enumerate(drip.trigger.channels):
        channel = channels.get(code)
        needs = _TRIGGER_CHANNEL[drip.trigger.kind]
        if channel is None and not draft.may_exist(CHANNELS, code):
            report.add(located.file, f"{key}.channels[{i}]", f"channel {code!r} not found")
        elif channel is not None and channel.platform is not needs:
            reason = f"channel {code!r} is {channel.platform.value}; {drip.trigger.kind.value} needs {needs.value}"
            report.add(located.file, f"{key}.channels[{i}]", reason)
    if drip.trigger.tag is not None:
        tag_problem = tag_reason(drip.trigger.tag, draft)
        if tag_problem is not None:
            report.add(located.file, f"{key}.tag", tag_problem)


def _tag_problems(located: Located[Drip], draft: Draft, report: Reporter) -> None:
    drip = located.value
    for i, stop in enumerate(drip.stop_when):
        reason: str | None = tag_reason(stop.tag, draft) if stop.tag is not None else None
        if stop.kind is StopKind.ADDED_WECOM_FRIEND and drip.trigger.kind is TriggerKind.FRIEND_ADDED:
            reason = "always true for a friend_added drip: it would stop at once"
        if reason is not None:
            report.add(located.file, f"{located.key}.stop_when[{i}]", reason)
    for i, ref in enumerate(drip.then_tags):
        reason = tag_reason(ref, draft)
        if reason is not None:
            report.add(located.file, f"{located.key}.then.tags[{i}]", reason)


def _trigger_platforms(drip: Drip, draft: Draft) -> frozenset[Platform]:
    tag = drip.trigger.tag
    tag_on = (tag_platforms(tag, draft) or tuple(Platform)) if tag is not None else ()
    return frozenset(drip.trigger.platforms(tag_on))


def _step_problem(drip: Drip, step: DripStep, message: Message, draft: Draft) -> str | None:
    reachable = DELIVERY_PLATFORMS[step.delivery] & _trigger_platforms(drip, draft)
    if not reachable:
        return f"{step.delivery.value} cannot reach a customer who arrived by {drip.trigger.kind.value}"
    reason = delivery_problem(message, step.delivery, group=False)
    _, latest = step.delay.bounds()
    first_minute = drip.trigger.kind is TriggerKind.FOLLOWED and latest.total_seconds() <= 60
    count = send_count(message)
    if reason is None and step.delivery is Delivery.MP_CUSTOM and first_minute and count > MP_EVENT_MESSAGES:
        reason = f"{count} messages in the minute after a follow; the platform allows {MP_EVENT_MESSAGES}"
    return reason


def check_drip_steps(draft: Draft, report: Reporter) -> None:
    """Every step's message exists and fits its delivery, which must reach the trigger's customers."""
    for located in draft.get(DRIPS):
        drip = located.value
        _trigger_problems(located, draft, report)
        _tag_problems(located, draft, report)
        for i, step in enumerate(drip.steps):
            message, missing = _message(draft, step.message)
            key = f"{located.key}.steps[{i}]"
            if missing is not None:
                report.add(located.file, f"{key}.message", missing)
            elif message is not None:
                reason = _step_problem(drip, step, message, draft)
                if reason is not None:
                    report.add(located.file, f"{key}.delivery", f"{step.message!r}: {reason}")


def _next_drips(drip: Drip, drips: dict[str, Drip]) -> list[str]:
    """Drips this one starts on completion: ``then.start`` and tag_added drips for ``then.tags``."""
    out = [drip.then_start] if drip.then_start is not None else []
    tags = set(drip.then_tags)
    out += [d.id for d in drips.values() if d.trigger.kind is TriggerKind.TAG_ADDED and d.trigger.tag in tags]
    return out


def _cycle_from(start: str, drips: dict[str, Drip]) -> list[str] | None:
    path: list[str] = [start]
    stack: list[tuple[str, list[str]]] = [(start, _next_drips(drips[start], drips))]
    while stack:
        _, pending = stack[-1]
        if not pending:
            stack.pop()
            path.pop()
            continue
        nxt = pending.pop()
        if nxt == start:
            return [*path, start]
        if nxt in drips and nxt not in path:
            path.append(nxt)
            stack.append((nxt, _next_drips(drips[nxt], drips)))
    return None


def check_drip_chains(draft: Draft, report: Reporter) -> None:
    """``then.start`` names a drip, and chains (also through tag_added triggers) never loop."""
    drips = {d.value.id: d.value for d in draft.get(DRIPS)}
    for located in draft.get(DRIPS):
        target = located.value.then_start
        if target is not None and target not in drips and not draft.may_exist(DRIPS, target):
            report.add(located.file, f"{located.key}.then.start", f"drip {target!r} not found")
        cycle = _cycle_from(located.value.id, drips)
        if cycle is not None:
            where = "then.start" if located.value.then_start is not None else "then.tags"
            report.add(located.file, f"{located.key}.{where}", f"circular chain: {' → '.join(cycle)}")


def check_group_posts(draft: Draft, report: Reporter) -> None:
    """Messages exist and can be posted to groups; target tags exist and are WeCom tags."""
    for located in draft.get(GROUP_POSTS):
        post = located.value
        message, missing = _message(draft, post.message)
        if missing is not None:
            report.add(located.file, f"{located.key}.message", missing)
        elif message is not None:
            reason = delivery_problem(message, post.delivery, group=True)
            if reason is not None:
                report.add(located.file, f"{located.key}.message", f"{post.message!r}: {reason}")
        for i, ref in enumerate(post.targets.tags):
            reason = tag_reason(ref, draft)
            on = tag_platforms(ref, draft)
            if reason is None and on is not None and Platform.WECOM_GROUP not in on:
                reason = f"tag {ref!r} is not a WeCom tag (its group has platforms without wecom)"
            if reason is not None:
                report.add(located.file, f"{located.key}.targets.tags[{i}]", reason)


SOP_CHECKS = (check_drip_steps, check_drip_chains, check_group_posts)
