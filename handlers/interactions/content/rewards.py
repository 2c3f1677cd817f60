"""Reward tables (``points``, ``tags``, ``coupon_pool``, ``lottery``) shared by check-in and referral."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bot.content.fields import ID, ID_HINT, tag_refs
from bot.content.fit import tag_reason
from bot.content.node import Node
from bot.content.registry import Draft, Section
from handlers.interactions.content.model import Reward

MAX_POINTS = 1_000_000


def parse_reward(node: Node) -> Reward | None:
    """Reads the reward keys of ``node`` (which may hold other keys too); None if none is given."""
    before = len(node.report.problems)
    points = node.integer("points", minimum=1)
    tags = tag_refs(node, "tags")
    pool = node.text("coupon_pool", pattern=ID, pattern_hint=ID_HINT)
    lottery = node.text("lottery", pattern=ID, pattern_hint=ID_HINT)
    if points is not None and points > MAX_POINTS:
        node.problem("points", f"more than {MAX_POINTS}")
    if len(node.report.problems) > before:
        return None
    if points is None and not tags and pool is None and lottery is None:
        node.problem(None, "needs a reward: points, tags, coupon_pool and/or lottery")
        return None
    return Reward(points or 0, tags, pool, lottery)


def reward_problems(
    reward: Reward, draft: Draft, pools: Section[Any], campaigns: Section[Any]
) -> Iterator[tuple[str, str]]:
    """``(key, reason)`` for unknown tags, coupon pools and campaigns named by a reward."""
    for i, ref in enumerate(reward.tags):
        reason = tag_reason(ref, draft)
        if reason is not None:
            yield f"tags[{i}]", reason
    for key, ident, section, what in (
        ("coupon_pool", reward.coupon_pool, pools, "coupon pool"),
        ("lottery", reward.lottery, campaigns, "lottery campaign"),
    ):
        if ident is None or draft.may_exist(section, ident):
            continue
        idents = {section.ident[1](item.value) for item in draft.get(section)} if section.ident else set()
        if ident not in idents:
            yield key, f"{what} {ident!r} not found"
