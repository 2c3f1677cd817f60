"""Daily check-in (签到): one per customer per local day, streaks, points, milestone rewards, leaderboard.

API for every channel (OA keyword "签到" / menu click, kf, H5) — inside the caller's transaction::

    result = await check_in(ctx, customer_id, source="mp")   # -> CheckinResult
    result.status   # CheckinStatus: checked_in | already | disabled
    result.text     # the Chinese reply from content/checkin.toml ({streak}, {points}, {balance} filled)
    result.streak, result.points, result.balance, result.local_day, result.milestone (Granted | None)

    rows = await leaderboard(ctx, "day" | "week", n=None)    # -> list[LeaderEntry]

"A day" is a calendar day in ``settings.tz`` (default Asia/Shanghai): 23:59:59 and 00:00:01 local time
are two days. One check-in per day is the unique (customer, local_day) row written with
``INSERT … ON CONFLICT DO NOTHING``: of 100 concurrent taps exactly one inserts, every other one answers
"already" and changes nothing. The streak is yesterday's streak + 1, else 1; points are ``points_per_day``
plus the highest streak bonus; a milestone reached today adds its reward (``once`` milestones only the
first time a customer ever reaches that streak).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Literal

from sqlalchemy import exists, func, select

from bot.content.templates import fill
from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import CHECKIN_VARIABLES
from handlers.interactions.content.model import Checkin as CheckinContent
from handlers.interactions.events import CheckinCompleted
from handlers.interactions.points import award, balance
from handlers.interactions.rewards import Granted, grant_reward
from handlers.interactions.tables import Checkin

DISABLED_TEXT = "签到活动暂未开放，敬请期待～"


class CheckinStatus(StrEnum):
    CHECKED_IN = "checked_in"
    ALREADY = "already"  # a second check-in the same local day: nothing changed
    DISABLED = "disabled"  # no [checkin] in content, or enabled = false


@dataclass(frozen=True, slots=True)
class CheckinResult:
    status: CheckinStatus
    text: str
    local_day: str  # YYYY-MM-DD in the configured timezone
    streak: int = 0
    points: int = 0  # earned by this check-in: points_per_day + streak bonus (milestone points not included)
    balance: int = 0  # after this check-in, milestone points included
    milestone: Granted | None = None

    @property
    def checked_in(self) -> bool:
        return self.status is CheckinStatus.CHECKED_IN


@dataclass(frozen=True, slots=True)
class LeaderEntry:
    rank: int
    customer_id: int
    name: str | None
    streak: int  # day: today's streak; week: the longest streak reached this week
    points: int  # day: today's check-in points; week: check-in points this week
    days: int  # check-ins in the period


def local_day(now: datetime, tz: tzinfo) -> date:
    return now.astimezone(tz).date()


async def check_in(ctx: Context, customer_id: int, source: str) -> CheckinResult:
    """Check ``customer_id`` in for today (``source``: mp | kf | h5)."""
    cfg = interactions_of(ctx.content).checkin
    now = ctx.now()
    day = local_day(now, ctx.settings.tz)
    if cfg is None or not cfg.enabled:
        return CheckinResult(CheckinStatus.DISABLED, DISABLED_TEXT, day.isoformat())
    yesterday = await _streak_on(ctx, customer_id, day - timedelta(days=1))
    streak = yesterday + 1
    points = cfg.points_for(streak)
    row = {
        "customer_id": customer_id, "local_day": day.isoformat(), "checked_at": now, "streak": streak,
        "points": points, "source": source[:16],
    }  # fmt: skip
    if not await insert_ignore(ctx.session, Checkin, row, ["customer_id", "local_day"]):
        return await _already(ctx, cfg, customer_id, day)
    await award(ctx, customer_id, points, "checkin", f"checkin:{day.isoformat()}")
    await ctx.emit(CheckinCompleted(customer_id, day.isoformat(), streak, points))
    granted, extra = await _milestone(ctx, cfg, customer_id, streak, day)
    total = await balance(ctx, customer_id)
    broken = streak == 1 and await _checked_in_before(ctx, customer_id, day)
    template = cfg.replies.streak_broken if broken else cfg.replies.success
    values = {"streak": str(streak), "points": str(points), "balance": str(total)}
    text = fill(template, values, {}, CHECKIN_VARIABLES)
    if extra:
        text = f"{text}\n{fill(extra, values, {}, CHECKIN_VARIABLES)}"
    return CheckinResult(CheckinStatus.CHECKED_IN, text, day.isoformat(), streak, points, total, granted)


async def _streak_on(ctx: Context, customer_id: int, day: date) -> int:
    found = await ctx.session.scalar(
        select(Checkin.streak).where(Checkin.customer_id == customer_id, Checkin.local_day == day.isoformat())
    )
    return int(found or 0)


async def _checked_in_before(ctx: Context, customer_id: int, day: date) -> bool:
    earlier = exists().where(Checkin.customer_id == customer_id, Checkin.local_day < day.isoformat())
    return bool(await ctx.session.scalar(select(earlier)))


async def _already(ctx: Context, cfg: CheckinContent, customer_id: int, day: date) -> CheckinResult:
    streak = await _streak_on(ctx, customer_id, day)
    total = await balance(ctx, customer_id)
    values = {"streak": str(streak), "points": "0", "balance": str(total)}
    text = fill(cfg.replies.already, values, {}, CHECKIN_VARIABLES)
    return CheckinResult(CheckinStatus.ALREADY, text, day.isoformat(), streak, 0, total)


async def _milestone(
    ctx: Context, cfg: CheckinContent, customer_id: int, streak: int, day: date
) -> tuple[Granted | None, str | None]:
    """The reward and reply text of a milestone reached today, if any."""
    milestone = cfg.milestone_at(streak)
    if milestone is None:
        return None, None
    if milestone.once:
        reached = exists().where(
            Checkin.customer_id == customer_id, Checkin.streak == streak, Checkin.local_day != day.isoformat()
        )
        if await ctx.session.scalar(select(reached)):
            return None, None
    ref = f"checkin:{customer_id}:m{streak}" + ("" if milestone.once else f":{day.isoformat()}")
    granted = await grant_reward(ctx, customer_id, milestone.reward, "checkin_milestone", ref)
    return granted, milestone.text


async def leaderboard(ctx: Context, period: Literal["day", "week"], n: int | None = None) -> list[LeaderEntry]:
    """Today's check-ins by streak (earliest first on ties), or this local week's (Monday on) by points."""
    cfg = interactions_of(ctx.content).checkin
    limit = n if n is not None else (cfg.leaderboard_size if cfg is not None else 10)
    today = local_day(ctx.now(), ctx.settings.tz)
    first = today if period == "day" else today - timedelta(days=today.weekday())
    points = func.sum(Checkin.points).label("points")
    streak = func.max(Checkin.streak).label("streak")
    days = func.count().label("days")
    first_at = func.min(Checkin.checked_at)
    order = (streak.desc(), first_at) if period == "day" else (points.desc(), streak.desc(), first_at)
    query = (
        select(Checkin.customer_id, Customer.name, streak, points, days)
        .join(Customer, Customer.id == Checkin.customer_id)
        .where(Checkin.local_day >= first.isoformat(), Checkin.local_day <= today.isoformat())
        .group_by(Checkin.customer_id, Customer.name)
        .order_by(*order, Checkin.customer_id)
        .limit(limit)
    )
    rows = (await ctx.session.execute(query)).all()
    return [
        LeaderEntry(i, int(r.customer_id), r.name, int(r.streak), int(r.points or 0), int(r.days))
        for i, r in enumerate(rows, start=1)
    ]
