"""Lottery draws (抽奖): fair, limited, verifiable, safe under any number of concurrent taps.

API for every channel (OA keyword / menu, kf, H5) — inside the caller's transaction, no HTTP::

    result = await draw(ctx, customer_id, "unbox", source="mp")   # -> DrawResult
    result.outcome   # DrawOutcome: win | lose | not_open | not_eligible | limit_reached | no_points
    result.text      # the Chinese reply from content (campaign replies over LOTTERY_REPLIES)
    result.prize_id, result.prize_name, result.coupon_code, result.seq, result.draw_id

A draw, in this order (each step's guarantee in brackets):

1. content campaign exists, ``enabled`` and inside ``starts_at``/``ends_at``; state not killed;
2. eligibility: tags (any of), follows the Official Account, first/any touch through one of the channels;
3. a ticket: an unused bonus ticket (check-in milestone, :func:`handlers.rewards.grant_ticket`) first,
   else an allowance ticket whose ref encodes the per-day / total count (``a:2026-11-23:1``) [the unique
   (campaign, customer, ref) makes 50 concurrent taps of a one-draw customer produce one ticket];
4. the campaign row lock, then ``seq = max(seq) + 1`` [collision-free; seq order = stock-taking order];
5. the points cost for allowance tickets (:func:`handlers.points.spend`, one conditional UPDATE);
6. ``roll = HMAC-SHA256(seed, campaign:seq:ticket)``, prize chosen by weight (:mod:`bot.lottery_math`);
7. stock taken by ONE conditional UPDATE (``remaining > 0``); none left → recorded as no prize;
8. the draw row (unique per ticket), then the prize: a coupon code, points, or physical (staff follow up);
9. the issuance-rate alarm: more prizes than ``alarm_per_hour`` in the last hour → an error is logged
   and the campaign's kill switch (``lottery_campaigns.killed``) is set; ``siyu-bot lottery resume`` undoes it.

Randomness comes only from the campaign seed (``secrets``), never from ``ctx.rng``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.content.interactions_model import LOTTERY_REPLIES, LOTTERY_VARIABLES, Campaign, Eligibility, Prize, PrizeKind
from bot.content.templates import fill
from bot.context import Context
from bot.db.growth import CustomerTag, Touch
from bot.db.interactions import Draw, LotteryTicket, PrizeStock
from bot.db.models import Customer
from bot.lottery_math import choose, roll_for
from handlers.lottery_state import ensure_campaign, lock_campaign, set_killed
from handlers.points import award, balance, spend
from handlers.rewards import issue_coupon

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
class _Ticket:
    id: int
    allowance: bool  # False: a bonus ticket (no points cost, outside the limits)


async def draw(ctx: Context, customer_id: int, campaign_id: str, source: str) -> DrawResult:
    """One draw for ``customer_id`` in ``campaign_id``; ``source`` is the channel (mp | kf | h5)."""
    campaign = ctx.content.campaign(campaign_id)
    now = ctx.now()
    if campaign is None or not campaign.is_open(now):
        return _refusal(campaign, campaign_id, DrawOutcome.NOT_OPEN)
    if not await is_eligible(ctx, customer_id, campaign.eligibility):
        return _refusal(campaign, campaign_id, DrawOutcome.NOT_ELIGIBLE)
    ticket = await _take_ticket(ctx, campaign, customer_id, now)
    if not isinstance(ticket, _Ticket):
        return _refusal(campaign, campaign_id, ticket)
    seed = await _enter(ctx, campaign, customer_id, ticket, now)
    if isinstance(seed, DrawOutcome):
        await _drop_ticket(ctx, ticket)
        return _refusal(campaign, campaign_id, seed)
    seq = await _next_seq(ctx, campaign.id)
    return await _settle(ctx, campaign, seed, customer_id, ticket, seq, now)


async def is_eligible(ctx: Context, customer_id: int, rule: Eligibility) -> bool:
    if not (rule.must_follow_mp or rule.tags or rule.channels):
        return True
    customer = await ctx.session.get(Customer, customer_id)
    if customer is None or (rule.must_follow_mp and not customer.mp_follower):
        return False
    if rule.tags:
        tagged = exists().where(CustomerTag.customer_id == customer_id, CustomerTag.tag.in_(rule.tags))
        if not await ctx.session.scalar(select(tagged)):
            return False
    if rule.channels and customer.first_channel not in rule.channels:
        touched = exists().where(Touch.customer_id == customer_id, Touch.channel_code.in_(rule.channels))
        return bool(await ctx.session.scalar(select(touched)))
    return True


async def _take_ticket(ctx: Context, campaign: Campaign, customer_id: int, now: datetime) -> _Ticket | DrawOutcome:
    """A bonus ticket, else a new allowance ticket within the limits, else why not."""
    bonus = await _claim_bonus(ctx, campaign.id, customer_id, now)
    if bonus is not None:
        return _Ticket(bonus, allowance=False)
    ref = await _allowance_ref(ctx, campaign, customer_id, now)
    if ref is None:
        return DrawOutcome.LIMIT_REACHED
    if campaign.points_cost and await balance(ctx, customer_id) < campaign.points_cost:
        return DrawOutcome.NO_POINTS
    row = {"campaign_id": campaign.id, "customer_id": customer_id, "ref": ref, "created_at": now, "used_at": now}
    insert_: Any = pg_insert if ctx.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert_(LotteryTicket)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["campaign_id", "customer_id", "ref"])
    )
    ticket_id = (await ctx.session.execute(stmt.returning(LotteryTicket.id))).scalar_one_or_none()
    if ticket_id is None:
        return DrawOutcome.LIMIT_REACHED  # a concurrent tap took this allowance
    return _Ticket(int(ticket_id), allowance=True)


async def _claim_bonus(ctx: Context, campaign_id: str, customer_id: int, now: datetime) -> int | None:
    """The oldest unused bonus ticket, claimed with a conditional UPDATE (a concurrent tap loses it)."""
    free = select(LotteryTicket.id).where(
        LotteryTicket.campaign_id == campaign_id,
        LotteryTicket.customer_id == customer_id,
        LotteryTicket.used_at.is_(None),
    )
    for ticket_id in (await ctx.session.scalars(free.order_by(LotteryTicket.id).limit(3))).all():
        claimed = await ctx.session.execute(
            update(LotteryTicket)
            .where(LotteryTicket.id == ticket_id, LotteryTicket.used_at.is_(None))
            .values(used_at=now)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            return int(ticket_id)
    return None


async def _allowance_ref(ctx: Context, campaign: Campaign, customer_id: int, now: datetime) -> str | None:
    """``a:<local day>:<n>`` (per-day limit), ``a:t:<n>`` (total only), ``a:x:<random>`` (no limit).

    None: the limit is reached. The unique ref turns concurrent taps that counted the same into one ticket.
    """
    if campaign.per_day is None and campaign.total is None:
        return f"a:x:{secrets.token_hex(8)}"
    used = await _allowance_count(ctx, campaign.id, customer_id, "a:%")
    if campaign.total is not None and used >= campaign.total:
        return None
    if campaign.per_day is None:
        return f"a:t:{used + 1}"
    day = now.astimezone(ctx.settings.tz).date().isoformat()
    today = await _allowance_count(ctx, campaign.id, customer_id, f"a:{day}:%")
    return None if today >= campaign.per_day else f"a:{day}:{today + 1}"


async def _allowance_count(ctx: Context, campaign_id: str, customer_id: int, pattern: str) -> int:
    """Allowance tickets are written in the same transaction as their draw: this counts draws."""
    count = await ctx.session.scalar(
        select(func.count()).where(
            LotteryTicket.campaign_id == campaign_id,
            LotteryTicket.customer_id == customer_id,
            LotteryTicket.ref.like(pattern),
        )
    )
    return int(count or 0)


async def _enter(
    ctx: Context, campaign: Campaign, customer_id: int, ticket: _Ticket, now: datetime
) -> str | DrawOutcome:
    """Take the campaign lock (creating the campaign's state on first use), re-check the total and pay.

    The seed, or the refusal (the caller then drops the ticket).
    """
    seed = await lock_campaign(ctx.session, campaign.id)
    if seed is None:  # killed, or no state yet (perhaps being created by a concurrent first draw)
        await ensure_campaign(ctx.session, ctx.content, campaign, now)
        seed = await lock_campaign(ctx.session, campaign.id)
    if seed is None:
        return DrawOutcome.NOT_OPEN  # the kill switch is on
    if not ticket.allowance:
        return seed
    # Two taps either side of local midnight use different day refs: the total is re-counted under the lock.
    both = campaign.per_day is not None and campaign.total is not None
    if both and await _allowance_count(ctx, campaign.id, customer_id, "a:%") > (campaign.total or 0):
        return DrawOutcome.LIMIT_REACHED
    cost = campaign.points_cost
    if cost and not await spend(ctx, customer_id, cost, "lottery", f"draw:{campaign.id}:t{ticket.id}"):
        return DrawOutcome.NO_POINTS
    return seed


async def _drop_ticket(ctx: Context, ticket: _Ticket) -> None:
    if ticket.allowance:
        await ctx.session.execute(delete(LotteryTicket).where(LotteryTicket.id == ticket.id))
    else:
        await ctx.session.execute(update(LotteryTicket).where(LotteryTicket.id == ticket.id).values(used_at=None))


async def _next_seq(ctx: Context, campaign_id: str) -> int:
    """Under the campaign lock every earlier draw is committed and visible: max + 1 cannot collide."""
    top = await ctx.session.scalar(select(func.max(Draw.seq)).where(Draw.campaign_id == campaign_id))
    return int(top or 0) + 1


async def _settle(
    ctx: Context, campaign: Campaign, seed: str, customer_id: int, ticket: _Ticket, seq: int, now: datetime
) -> DrawResult:
    roll = roll_for(seed, campaign.id, seq, ticket.id)
    chosen = campaign.prize(choose(roll, [(p.id, p.weight) for p in campaign.prizes]))
    assert chosen is not None
    prize = chosen if chosen.kind is not PrizeKind.NONE and await _take_stock(ctx, campaign.id, chosen.id) else None
    code = None
    if prize is not None and prize.kind is PrizeKind.COUPON and prize.pool:
        code = await issue_coupon(ctx, prize.pool, customer_id, f"draw:{campaign.id}:{seq}")
    values = {
        "campaign_id": campaign.id, "ticket_id": ticket.id, "customer_id": customer_id, "seq": seq, "roll": roll,
        "prize_id": prize.id if prize else None, "coupon_code": code, "drawn_at": now,
    }  # fmt: skip
    draw_id = int((await ctx.session.execute(insert(Draw).values(**values).returning(Draw.id))).scalar_one())
    if prize is not None and prize.kind is PrizeKind.POINTS and prize.points:
        await award(ctx, customer_id, prize.points, "lottery", f"draw:{campaign.id}:{seq}")
    if prize is not None:
        await _check_alarm(ctx, campaign, now)
    return _result(campaign, prize, code, draw_id, seq)


async def _take_stock(ctx: Context, campaign_id: str, prize_id: str) -> bool:
    taken = await ctx.session.execute(
        update(PrizeStock)
        .where(PrizeStock.campaign_id == campaign_id, PrizeStock.prize_id == prize_id, PrizeStock.remaining > 0)
        .values(remaining=PrizeStock.remaining - 1)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


async def _check_alarm(ctx: Context, campaign: Campaign, now: datetime) -> None:
    """More prizes than ``alarm_per_hour`` in the last hour: log an error and kill-switch the campaign."""
    limit = campaign.alarm_per_hour
    if limit is None:
        return
    issued = await ctx.session.scalar(
        select(func.count()).where(
            Draw.campaign_id == campaign.id, Draw.prize_id.is_not(None), Draw.drawn_at > now - timedelta(hours=1)
        )
    )
    if int(issued or 0) > limit:
        reason = f"issuance alarm: {issued} prizes in the last hour > alarm_per_hour {limit}"
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
