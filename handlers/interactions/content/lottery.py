"""``[[campaigns]]`` in ``lottery.toml`` / ``lottery/*.toml``: prize draws (抽奖).

A campaign runs from ``starts_at`` to ``ends_at`` (TOML date-times with a UTC offset), for eligible
customers, within per-customer limits, optionally costing points. Each draw picks a prize by weight
among the ``[[campaigns.prizes]]``; exactly one prize has ``kind = "none"`` (no prize, unlimited). The
"none" prize may weigh 0: every draw then picks a real prize and wins while that prize has stock.
``enabled = false`` is the kill switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bot.content.fields import ID, ID_HINT, aware_datetime, choice, tag_refs, template
from bot.content.node import Node
from bot.content.registry import Section
from handlers.interactions.content.model import (
    LOTTERY_REPLIES,
    LOTTERY_VARIABLES,
    Campaign,
    Eligibility,
    Prize,
    PrizeKind,
)

MAX_PRIZES = 50
MAX_STOCK = 10_000_000


def _prize(node: Node) -> Prize | None:
    before = len(node.report.problems)
    prize_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
    name = node.text("name", required=True, max_chars=60)
    kind = choice(node, "kind", PrizeKind, what="prize kind")
    weight = node.integer("weight", required=True, minimum=0)
    stock = node.integer("stock", required=kind is not None and kind is not PrizeKind.NONE, minimum=0)
    pool = node.text("pool", pattern=ID, pattern_hint=ID_HINT)
    points = node.integer("points", minimum=1)
    node.finish()
    if weight == 0 and kind is not None and kind is not PrizeKind.NONE:
        node.problem("weight", 'must be at least 1, got 0 (only the "none" prize may weigh 0)')
    if kind is PrizeKind.NONE and stock is not None:
        node.problem("stock", 'a "none" prize is unlimited: remove stock')
    if stock is not None and stock > MAX_STOCK:
        node.problem("stock", f"more than {MAX_STOCK}")
    if (kind is PrizeKind.COUPON) != (pool is not None) and kind is not None:
        node.problem("pool", "is required for coupon prizes" if pool is None else "only for coupon prizes")
    if (kind is PrizeKind.POINTS) != (points is not None) and kind is not None:
        node.problem("points", "is required for points prizes" if points is None else "only for points prizes")
    if prize_id is None or name is None or kind is None or weight is None or len(node.report.problems) > before:
        return None
    return Prize(prize_id, name, kind, weight, stock, pool, points)


def _prizes(node: Node) -> tuple[Prize, ...] | None:
    nodes = node.tables("prizes", required=True)
    if len(nodes) > MAX_PRIZES:
        node.problem("prizes", f"{len(nodes)} prizes, at most {MAX_PRIZES}")
        return None
    parsed = [(n, _prize(n)) for n in nodes]
    prizes = [p for _, p in parsed if p is not None]
    if len(prizes) != len(nodes) or not nodes:
        return None
    ids: set[str] = set()
    for item, prize in parsed:
        assert prize is not None
        if prize.id in ids:
            item.problem("id", f"duplicate prize id {prize.id!r}")
            return None
        ids.add(prize.id)
    nones = sum(p.kind is PrizeKind.NONE for p in prizes)
    if nones != 1:
        node.problem("prizes", f'needs exactly one prize with kind = "none" (the no-prize outcome), found {nones}')
        return None
    if not any(p.weight for p in prizes):
        node.problem("prizes", "every weight is 0: at least one prize needs weight >= 1")
        return None
    return tuple(prizes)


def _eligibility(node: Node) -> Eligibility | None:
    table = node.table("eligibility")
    if table is None:
        return None if "eligibility" in node.data else Eligibility()
    result = Eligibility(tag_refs(table, "tags"), table.flag("must_follow_mp", False), table.strings("channels") or ())
    table.finish()
    return result


def _limits(node: Node) -> tuple[int | None, int | None, bool]:
    per_day = node.integer("per_day", minimum=1)
    total = node.integer("total", minimum=1)
    ok = True
    if per_day is None and total is None and not node.has("per_day") and not node.has("total"):
        node.problem(None, "needs a per-customer limit: per_day and/or total")
        ok = False
    if per_day is not None and total is not None and per_day > total:
        node.problem("per_day", f"{per_day} is more than total ({total})")
        ok = False
    return per_day, total, ok


def _replies(node: Node) -> Mapping[str, str] | None:
    table = node.table("replies")
    out = dict(LOTTERY_REPLIES)
    if table is None:
        return None if "replies" in node.data else MappingProxyType(out)
    before = len(table.report.problems)
    for key in LOTTERY_REPLIES:
        text = template(table, key, LOTTERY_VARIABLES)
        if text is not None:
            out[key] = text
    table.finish()
    return MappingProxyType(out) if len(table.report.problems) == before else None


def parse_campaign(node: Node) -> Campaign | None:
    before = len(node.report.problems)
    campaign_id = node.text("id", required=True, pattern=ID, pattern_hint=ID_HINT)
    name = node.text("name", required=True, max_chars=60)
    enabled = node.flag("enabled", True)
    starts, ends = aware_datetime(node, "starts_at"), aware_datetime(node, "ends_at")
    if starts is not None and ends is not None and ends <= starts:
        node.problem("ends_at", f"{ends.isoformat()} is not after starts_at {starts.isoformat()}")
    eligibility = _eligibility(node)
    per_day, total, _ = _limits(node)
    cost = node.integer("points_cost", minimum=0)
    alarm = node.integer("alarm_per_hour", minimum=1)
    prizes = _prizes(node)
    replies = _replies(node)
    node.finish()
    if campaign_id is None or name is None or starts is None or ends is None or eligibility is None:
        return None
    if prizes is None or replies is None or len(node.report.problems) > before:
        return None
    return Campaign(
        campaign_id, name, enabled, starts, ends, eligibility, per_day, total, cost or 0, prizes, alarm, replies
    )


CAMPAIGNS: Section[Campaign] = Section("campaigns", parse_campaign, ident=("id", lambda c: c.id))
