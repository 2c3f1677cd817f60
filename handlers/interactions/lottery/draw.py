"""Lottery draws (抽奖): fair, limited, verifiable, safe under any number of concurrent taps.

API for every channel (OA keyword / menu, kf, H5) — inside the caller's transaction, no HTTP::

    result = await draw(ctx, customer_id, "unbox", source="mp")   # -> DrawResult
    result.outcome   # DrawOutcome: win | lose | not_open | not_eligible | limit_reached | no_points
    result.text      # the Chinese reply from content (campaign replies over LOTTERY_REPLIES)
    result.prize_id, result.prize_name, result.coupon_code, result.seq, result.draw_id

    results = await draw_many(ctx, "unbox", [DrawRequest(c, "h5") for c in customers])  # one per request

``draw`` is ``draw_many`` with one request. ``draw_many`` settles any number of draws of one campaign in
the caller's transaction with a fixed number of statements per batch (not per draw), which is what
:mod:`handlers.interactions.lottery.batch` uses to run a live stream's concurrent taps at a few thousand a second.
A batch, in this order (each step's guarantee in brackets):

1. content campaign exists, ``enabled`` and inside ``starts_at``/``ends_at``; state not killed;
2. eligibility per customer: tags (any of), follows the Official Account, first/any touch through one of
   the channels;
3. a ticket per request: an unused bonus ticket (check-in milestone, :func:`handlers.interactions.rewards.grant_ticket`)
   first, claimed with one conditional UPDATE for the batch; else an allowance ticket whose ref encodes the
   per-day / total count (``a:2026-11-23:1``), all inserted by one ``INSERT … ON CONFLICT DO NOTHING``
   [the unique (campaign, customer, ref) makes 50 concurrent taps of a one-draw customer produce one
   ticket, inside a batch and across transactions];
4. the campaign row lock (once per batch), then ``seq = max(seq) + 1, + 2, …`` in request order
   [collision-free; seq order = stock-taking order]; the total re-counted and the points cost paid
   (:func:`handlers.interactions.points.spend`, one conditional UPDATE) per allowance ticket;
5. ``roll = HMAC-SHA256(seed, campaign:seq:ticket)``, prize chosen by weight
   (:mod:`handlers.interactions.lottery.verifiable`);
6. stock, ONE conditional UPDATE per chosen prize (``remaining >= n``): when every draw that chose it
   can have it (and no alarm could stop the batch midway), that UPDATE is all; otherwise the prize's row
   is read under the lock, the draws are resolved in ``seq`` order in memory exactly as
   :func:`handlers.interactions.lottery.verifiable.replay` does, and the UPDATE takes what was won;
7. the prizes: a coupon code, points, or physical (staff follow up); the draw rows (unique per ticket) in
   one INSERT;
8. the issuance-rate alarm: more prizes than ``alarm_per_hour`` in the last hour → an error is logged and
   the campaign's kill switch (``lottery_campaigns.killed``) is set at that draw, and the batch's later
   requests are refused as ``not_open``; ``siyu-bot lottery resume`` undoes it.

Refused requests leave nothing behind (their tickets are deleted, a bonus ticket is freed again).
Randomness comes only from the campaign seed (``secrets``), never from ``ctx.rng``.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.content.templates import fill
from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import with_rows
from handlers.growth.tables import CustomerTag, Touch
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import (
    LOTTERY_REPLIES,
    LOTTERY_VARIABLES,
    Campaign,
    Eligibility,
    Prize,
    PrizeKind,
)
from handlers.interactions.events import LotteryDrawn
from handlers.interactions.lottery.state import ensure_campaign, lock_campaign, set_killed
from handlers.interactions.lottery.verifiable import choose, roll_for
from handlers.interactions.points import award, spend
from handlers.interactions.rewards import issue_coupon
from handlers.interactions.tables import Draw, LotteryTicket, PointsBalance, PrizeStock

log = logging.getLogger(__name__)


class DrawOutcome(StrEnum):
    WIN = "win"
    LOSE = "lose"
    NOT_OPEN = "not_open"  # unknown campaign, outside its window, disabled or killed
    NOT_ELIGIBLE = "not_eligible"
    LIMIT_REACHED = "limit_reached"
    NO_POINTS = "no_points"


@dataclass(frozen=True, slots=True)
class DrawResult:
    outcome: DrawOutcome
    text: str
    campaign_id: str
    draw_id: int | None = None
    seq: int | None = None
    prize_id: str | None = None
    prize_name: str | None = None
    prize_kind: PrizeKind | None = None
    coupon_code: str | None = None

    @property
    def won(self) -> bool:
        return self.outcome is DrawOutcome.WIN


@dataclass(frozen=True, slots=True)
class DrawRequest:
    customer_id: int
    source: str = "h5"  # the channel: mp | kf | h5


@dataclass(frozen=True, slots=True)
class _Ticket:
    id: int
    allowance: bool  # False: a bonus ticket (no points cost, outside the limits)


@dataclass(slots=True, eq=False)
class _Pending:
    """A request that holds a ticket and is about to draw."""

    index: int
    customer_id: int
    ticket: _Ticket
    seq: int = 0
    roll: str = ""
    prize: Prize | None = None


async def draw(ctx: Context, customer_id: int, campaign_id: str, source: str) -> DrawResult:
    """One draw for ``customer_id`` in ``campaign_id``; ``source`` is the channel (mp | kf | h5)."""
    [result] = await draw_many(ctx, campaign_id, [DrawRequest(customer_id, source)])
    return result


async def draw_many(ctx: Context, campaign_id: str, requests: Sequence[DrawRequest]) -> list[DrawResult]:
    """One result per request, in order; the draws take ``seq`` in request order."""
    campaign = interactions_of(ctx.content).campaign(campaign_id)
    now = ctx.now()
    if campaign is None or not campaign.is_open(now):
        return [_refusal(campaign, campaign_id, DrawOutcome.NOT_OPEN) for _ in requests]
    out: list[DrawResult | None] = [None] * len(requests)
    eligible = await _eligible(ctx, campaign.eligibility, {r.customer_id for r in requests})
    for i, r in enumerate(requests):
        if r.customer_id not in eligible:
            out[i] = _refusal(campaign, campaign_id, DrawOutcome.NOT_ELIGIBLE)
    asking = [i for i, r in enumerate(requests) if out[i] is None]
    tickets = await _take_tickets(ctx, campaign, [requests[i].customer_id for i in asking], now)
    pending: list[_Pending] = []
    for i, ticket in zip(asking, tickets, strict=True):
        if isinstance(ticket, _Ticket):
            pending.append(_Pending(i, requests[i].customer_id, ticket))
        else:
            out[i] = _refusal(campaign, campaign_id, ticket)
    if pending:
        seed = await _enter(ctx, campaign, now)
        refusals = {p: DrawOutcome.NOT_OPEN for p in pending} if seed is None else await _pay(ctx, campaign, pending)
        drawing = [p for p in pending if p not in refusals]
        drawn = await _settle(ctx, campaign, seed, drawing, now) if seed is not None and drawing else {}
        for p in drawing:
            if p in drawn:
                out[p.index] = drawn[p]
            else:
                refusals[p] = DrawOutcome.NOT_OPEN  # the issuance alarm killed the campaign before it
        await _drop_tickets(ctx, [p.ticket for p in refusals])
        for p, why in refusals.items():
            out[p.index] = _refusal(campaign, campaign_id, why)
    assert all(r is not None for r in out)
    results = [r for r in out if r is not None]
    for request, result in zip(requests, results, strict=True):
        if result.seq is not None:
            await ctx.emit(LotteryDrawn(request.customer_id, campaign_id, result.seq, result.won, result.prize_id))
    return results


async def _eligible(ctx: Context, rule: Eligibility, customer_ids: set[int]) -> set[int]:
    """Who may draw: follows the Official Account, has any of the tags, first or any touch through one of
    the channels (each rule only when set) — at most three queries for the whole batch."""
    if not (rule.must_follow_mp or rule.tags or rule.channels):
        return customer_ids
    known = select(Customer.id, Customer.first_channel).where(Customer.id.in_(customer_ids))
    if rule.must_follow_mp:
        known = known.where(Customer.mp_follower.is_(True))
    found = {int(c): first for c, first in (await ctx.session.execute(known)).all()}
    if rule.tags and found:
        tags = select(CustomerTag.customer_id).where(CustomerTag.customer_id.in_(found), CustomerTag.tag.in_(rule.tags))
        tagged = set((await ctx.session.scalars(tags)).all())
        found = {c: first for c, first in found.items() if c in tagged}
    if rule.channels and found:
        elsewhere = [c for c, first in found.items() if first not in rule.channels]
        touches = select(Touch.customer_id).where(
            Touch.customer_id.in_(elsewhere), Touch.channel_code.in_(rule.channels)
        )
        touched = set((await ctx.session.scalars(touches)).all()) if elsewhere else set()
        found = {c: first for c, first in found.items() if first in rule.channels or c in touched}
    return set(found)


async def _take_tickets(
    ctx: Context, campaign: Campaign, customers: list[int], now: datetime
) -> list[_Ticket | DrawOutcome]:
    """Per position of ``customers``: a bonus ticket, else a new allowance ticket within the limits, else why not."""
    if not customers:
        return []
    out: list[_Ticket | DrawOutcome | None] = [None] * len(customers)
    for i, ticket_id in (await _claim_bonus(ctx, campaign.id, customers, now)).items():
        out[i] = _Ticket(ticket_id, allowance=False)
    rest = [i for i in range(len(customers)) if out[i] is None]
    poor = await _short_of_points(ctx, campaign, {customers[i] for i in rest})
    refs = await _allowance_refs(ctx, campaign, [customers[i] for i in rest], now)
    rows: dict[tuple[int, str], int] = {}
    for i, ref in zip(rest, refs, strict=True):
        if ref is None:
            out[i] = DrawOutcome.LIMIT_REACHED
        elif customers[i] in poor:
            out[i] = DrawOutcome.NO_POINTS
        else:
            rows[(customers[i], ref)] = i
    for key, ticket_id in (await _insert_tickets(ctx, campaign.id, list(rows), now)).items():
        out[rows.pop(key)] = _Ticket(ticket_id, allowance=True)
    for i in rows.values():
        out[i] = DrawOutcome.LIMIT_REACHED  # a concurrent tap took this allowance
    return [o if o is not None else DrawOutcome.LIMIT_REACHED for o in out]


async def _claim_bonus(ctx: Context, campaign_id: str, customers: list[int], now: datetime) -> dict[int, int]:
    """Position → bonus ticket id: each customer's oldest unused bonus tickets, one per position, claimed by
    one conditional UPDATE (a ticket a concurrent tap claimed first is not returned)."""
    free = select(LotteryTicket.id, LotteryTicket.customer_id).where(
        LotteryTicket.campaign_id == campaign_id,
        LotteryTicket.customer_id.in_(set(customers)),
        LotteryTicket.used_at.is_(None),
    )
    spare: dict[int, list[int]] = {}
    for ticket_id, customer_id in (await ctx.session.execute(free.order_by(LotteryTicket.id))).all():
        spare.setdefault(int(customer_id), []).append(int(ticket_id))
    if not spare:
        return {}
    wanted = {i: spare[c].pop(0) for i, c in enumerate(customers) if spare.get(c)}
    claimed = await ctx.session.scalars(
        update(LotteryTicket)
        .where(LotteryTicket.id.in_(wanted.values()), LotteryTicket.used_at.is_(None))
        .values(used_at=now)
        .returning(LotteryTicket.id)
    )
    got = {int(t) for t in claimed.all()}
    return {i: t for i, t in wanted.items() if t in got}


async def _short_of_points(ctx: Context, campaign: Campaign, customers: set[int]) -> set[int]:
    """Customers whose balance cannot pay one draw (checked again, atomically, when it is paid)."""
    if not campaign.points_cost or not customers:
        return set()
    query = select(PointsBalance.customer_id, PointsBalance.balance).where(PointsBalance.customer_id.in_(customers))
    rich = {int(c) for c, b in (await ctx.session.execute(query)).all() if b >= campaign.points_cost}
    return customers - rich


async def _allowance_refs(ctx: Context, campaign: Campaign, customers: list[int], now: datetime) -> list[str | None]:
    """Per position: ``a:<local day>:<n>`` (per-day limit), ``a:t:<n>`` (total only), ``a:x:<random>`` (no
    limit); None: the limit is reached. A customer's later positions count the earlier ones.

    The unique ref turns concurrent taps (other transactions) that counted the same into one ticket.
    """
    if campaign.per_day is None and campaign.total is None:
        return [f"a:x:{secrets.token_hex(8)}" for _ in customers]
    if not customers:
        return []
    day = now.astimezone(ctx.settings.tz).date().isoformat()
    used: dict[int, int] = dict.fromkeys(customers, 0)
    today: dict[int, int] = dict.fromkeys(customers, 0)
    # Allowance tickets are written in the same transaction as their draw: these are draws.
    query = select(LotteryTicket.customer_id, LotteryTicket.ref).where(
        LotteryTicket.campaign_id == campaign.id,
        LotteryTicket.customer_id.in_(set(customers)),
        LotteryTicket.ref.like("a:%"),
    )
    for customer_id, ref in (await ctx.session.execute(query)).all():
        used[int(customer_id)] += 1
        today[int(customer_id)] += ref.startswith(f"a:{day}:")
    refs: list[str | None] = []
    for c in customers:
        if (campaign.total is not None and used[c] >= campaign.total) or (
            campaign.per_day is not None and today[c] >= campaign.per_day
        ):
            refs.append(None)
            continue
        used[c] += 1
        today[c] += 1
        refs.append(f"a:t:{used[c]}" if campaign.per_day is None else f"a:{day}:{today[c]}")
    return refs


async def _insert_tickets(
    ctx: Context, campaign_id: str, keys: list[tuple[int, str]], now: datetime
) -> dict[tuple[int, str], int]:
    """(customer, ref) → new ticket id; a key some other transaction inserted first is missing."""
    if not keys:
        return {}
    rows = [
        {"campaign_id": campaign_id, "customer_id": c, "ref": ref, "created_at": now, "used_at": now} for c, ref in keys
    ]
    insert_: Any = pg_insert if ctx.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        with_rows(insert_(LotteryTicket), rows)
        .on_conflict_do_nothing(index_elements=["campaign_id", "customer_id", "ref"])
        .returning(LotteryTicket.id, LotteryTicket.customer_id, LotteryTicket.ref)
    )
    return {(int(c), str(ref)): int(t) for t, c, ref in (await ctx.session.execute(stmt)).all()}


async def _enter(ctx: Context, campaign: Campaign, now: datetime) -> str | None:
    """Take the campaign lock (creating the campaign's state on first use) and return the seed; None when
    the kill switch is on."""
    seed = await lock_campaign(ctx.session, campaign.id)
    if seed is None:  # killed, or no state yet (perhaps being created by a concurrent first draw)
        await ensure_campaign(ctx.session, ctx.content, campaign, now)
        seed = await lock_campaign(ctx.session, campaign.id)
    return seed


async def _pay(ctx: Context, campaign: Campaign, pending: list[_Pending]) -> dict[_Pending, DrawOutcome]:
    """Under the lock: the total re-counted and the points cost paid; the requests refused, with why."""
    refused: dict[_Pending, DrawOutcome] = {}
    allowance = [p for p in pending if p.ticket.allowance]
    # Two taps either side of local midnight use different day refs: the total is re-counted under the lock.
    if allowance and campaign.per_day is not None and campaign.total is not None:
        query = (
            select(LotteryTicket.customer_id, func.count())
            .where(
                LotteryTicket.campaign_id == campaign.id,
                LotteryTicket.customer_id.in_({p.customer_id for p in allowance}),
                LotteryTicket.ref.like("a:%"),
            )
            .group_by(LotteryTicket.customer_id)
        )
        excess = {int(c): int(n) - campaign.total for c, n in (await ctx.session.execute(query)).all()}
        for p in reversed(allowance):  # a customer's last tickets are the ones over the total
            if excess.get(p.customer_id, 0) > 0:
                excess[p.customer_id] -= 1
                refused[p] = DrawOutcome.LIMIT_REACHED
    cost = campaign.points_cost
    for p in allowance:
        if cost and p not in refused:
            ref = f"draw:{campaign.id}:t{p.ticket.id}"
            if not await spend(ctx, p.customer_id, cost, "lottery", ref):
                refused[p] = DrawOutcome.NO_POINTS
    return refused


async def _drop_tickets(ctx: Context, tickets: list[_Ticket]) -> None:
    allowance = [t.id for t in tickets if t.allowance]
    bonus = [t.id for t in tickets if not t.allowance]
    if allowance:
        await ctx.session.execute(delete(LotteryTicket).where(LotteryTicket.id.in_(allowance)))
    if bonus:
        await ctx.session.execute(update(LotteryTicket).where(LotteryTicket.id.in_(bonus)).values(used_at=None))


async def _settle(
    ctx: Context, campaign: Campaign, seed: str, pending: list[_Pending], now: datetime
) -> dict[_Pending, DrawResult]:
    """Under the lock: seq, roll, prize and stock for each request in order; the draws written. Requests
    after a draw that tripped the issuance alarm are left out (the caller refuses them)."""
    top = await ctx.session.scalar(select(func.max(Draw.seq)).where(Draw.campaign_id == campaign.id))
    weights = [(p.id, p.weight) for p in campaign.prizes]
    for n, p in enumerate(pending, start=int(top or 0) + 1):
        p.seq = n
        p.roll = roll_for(seed, campaign.id, n, p.ticket.id)
        p.prize = campaign.prize(choose(p.roll, weights))
    chosen = Counter(p.prize.id for p in pending if p.prize and p.prize.kind is not PrizeKind.NONE)
    allowed = await _prizes_before_alarm(ctx, campaign, now)
    # Without an alarm to stop the batch midway, a prize with stock for everyone who chose it is taken by
    # one conditional UPDATE and never read; the others are read (exact: nobody else takes stock now).
    prepaid: set[str] = set()
    for prize_id, n in chosen.items() if allowed is None else ():
        if await _try_take_stock(ctx, campaign.id, prize_id, n):
            prepaid.add(prize_id)
    stock = {pid: chosen[pid] for pid in prepaid} | await _stock(ctx, campaign.id, set(chosen) - prepaid)
    drawing: list[_Pending] = []
    taken: dict[str, int] = {}
    tripped = False
    for p in pending:
        if tripped:
            break  # the previous draw tripped the alarm: the campaign is killed from here on
        drawing.append(p)
        prize = p.prize
        if prize is None or prize.kind is PrizeKind.NONE or stock.get(prize.id, 0) <= 0:
            p.prize = None  # "no prize", or its stock is gone
            continue
        stock[prize.id] -= 1
        taken[prize.id] = taken.get(prize.id, 0) + 1
        if allowed is not None:
            allowed -= 1
            tripped = allowed < 0
    for prize_id, n in taken.items():
        if prize_id not in prepaid and not await _try_take_stock(ctx, campaign.id, prize_id, n):
            raise RuntimeError(f"prize stock {campaign.id}/{prize_id} changed outside the campaign lock")
    codes: dict[int, str | None] = {}
    for p in drawing:
        if p.prize is not None and p.prize.kind is PrizeKind.COUPON and p.prize.pool:
            codes[p.seq] = await issue_coupon(ctx, p.prize.pool, p.customer_id, f"draw:{campaign.id}:{p.seq}")
    rows = [
        {
            "campaign_id": campaign.id,
            "ticket_id": p.ticket.id,
            "customer_id": p.customer_id,
            "seq": p.seq,
            "roll": p.roll,
            "prize_id": p.prize.id if p.prize else None,
            "coupon_code": codes.get(p.seq),
            "drawn_at": now,
        }
        for p in drawing
    ]
    ids = {
        int(seq): int(i)
        for i, seq in (await ctx.session.execute(with_rows(insert(Draw), rows).returning(Draw.id, Draw.seq))).all()
    }
    for p in drawing:
        if p.prize is not None and p.prize.kind is PrizeKind.POINTS and p.prize.points:
            await award(ctx, p.customer_id, p.prize.points, "lottery", f"draw:{campaign.id}:{p.seq}")
    if tripped:
        await _kill_for_alarm(ctx, campaign, now)
    return {p: _result(campaign, p.prize, codes.get(p.seq), ids[p.seq], p.seq) for p in drawing}


async def _stock(ctx: Context, campaign_id: str, prize_ids: set[str]) -> dict[str, int]:
    """What is left of these prizes (under the campaign lock nobody else takes stock)."""
    if not prize_ids:
        return {}
    query = select(PrizeStock.prize_id, PrizeStock.remaining).where(
        PrizeStock.campaign_id == campaign_id, PrizeStock.prize_id.in_(prize_ids)
    )
    return {str(p): int(r) for p, r in (await ctx.session.execute(query)).all()}


async def _try_take_stock(ctx: Context, campaign_id: str, prize_id: str, n: int) -> bool:
    """ONE conditional UPDATE taking ``n``: never below zero; False (nothing taken) when fewer are left."""
    taken = await ctx.session.execute(
        update(PrizeStock)
        .where(PrizeStock.campaign_id == campaign_id, PrizeStock.prize_id == prize_id, PrizeStock.remaining >= n)
        .values(remaining=PrizeStock.remaining - n)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


async def _prizes_before_alarm(ctx: Context, campaign: Campaign, now: datetime) -> int | None:
    """How many more prizes may go out in this hour before ``alarm_per_hour`` trips (None: no alarm)."""
    limit = campaign.alarm_per_hour
    if limit is None:
        return None
    issued = await ctx.session.scalar(
        select(func.count()).where(
            Draw.campaign_id == campaign.id, Draw.prize_id.is_not(None), Draw.drawn_at > now - timedelta(hours=1)
        )
    )
    return limit - int(issued or 0)


async def _kill_for_alarm(ctx: Context, campaign: Campaign, now: datetime) -> None:
    """More prizes than ``alarm_per_hour`` in the last hour: log an error and kill-switch the campaign."""
    issued = await ctx.session.scalar(
        select(func.count()).where(
            Draw.campaign_id == campaign.id, Draw.prize_id.is_not(None), Draw.drawn_at > now - timedelta(hours=1)
        )
    )
    reason = f"issuance alarm: {issued} prizes in the last hour > alarm_per_hour {campaign.alarm_per_hour}"
    if await set_killed(ctx.session, campaign.id, True, reason):
        log.error("lottery campaign killed by issuance alarm", extra={"campaign_id": campaign.id, "issued": issued})


def _result(campaign: Campaign, prize: Prize | None, code: str | None, draw_id: int, seq: int) -> DrawResult:
    if prize is None:
        text = _text(campaign, "lose")
        return DrawResult(DrawOutcome.LOSE, text, campaign.id, draw_id, seq)
    key = "win_coupon" if code else "win"
    text = _text(campaign, key, prize=prize.name, code=code)
    return DrawResult(DrawOutcome.WIN, text, campaign.id, draw_id, seq, prize.id, prize.name, prize.kind, code)


def _refusal(campaign: Campaign | None, campaign_id: str, outcome: DrawOutcome) -> DrawResult:
    if campaign is None:
        text = fill(LOTTERY_REPLIES[outcome.value], {"campaign": "活动"}, {}, LOTTERY_VARIABLES)
        return DrawResult(outcome, text, campaign_id)
    return DrawResult(outcome, _text(campaign, outcome.value), campaign_id)


def _text(campaign: Campaign, key: str, prize: str | None = None, code: str | None = None) -> str:
    template = campaign.replies.get(key) or LOTTERY_REPLIES[key]
    return fill(template, {"campaign": campaign.name, "prize": prize, "code": code}, {}, LOTTERY_VARIABLES)


async def bonus_tickets(ctx: Context, customer_id: int, campaign_id: str) -> int:
    """Unused bonus tickets (extra draws from check-in milestones …), for "你还有 N 次额外机会"."""
    count = await ctx.session.scalar(
        select(func.count()).where(
            LotteryTicket.campaign_id == campaign_id,
            LotteryTicket.customer_id == customer_id,
            LotteryTicket.used_at.is_(None),
        )
    )
    return int(count or 0)
