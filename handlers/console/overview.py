"""概览: adds, losses, net and welcomes for today / 7 / 30 days by channel, the daily trend, a funnel per
channel and the health of the platform connections — from ``stats channels`` and the API's health."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import and_, case, func, select

from handlers.api import operations
from handlers.console.apicall import api_json
from handlers.console.auth import Viewer, page
from handlers.console.charts import funnel, trend_line
from handlers.console.core import CONSOLE, Console
from handlers.console.i18n import t
from handlers.growth.content import channels_of
from handlers.growth.stats import ADD_ACTIONS, ChannelStats, channel_stats
from handlers.growth.tables import Touch

PERIODS = {"today": 1, "7": 7, "30": 30}
TREND_DAYS = 30


def day_start(console: Console, days: int) -> datetime:
    """Local midnight ``days - 1`` days ago (1: today)."""
    today = console.now().astimezone(console.services.settings.tz).date()
    return datetime.combine(today - timedelta(days=days - 1), time(0), console.services.settings.tz)


async def daily_adds(console: Console) -> list[tuple[str, int]]:
    """Adds per local day over the last :data:`TREND_DAYS` days (the ``stats channels`` meaning of an add),
    counted by the database: one row of one sum per day between local midnights (DST-correct)."""
    tz = console.services.settings.tz
    first = day_start(console, TREND_DAYS)
    bounds = [datetime.combine(first.date() + timedelta(days=n), time(0), tz) for n in range(TREND_DAYS + 1)]
    at = Touch.occurred_at
    days = [func.sum(case((and_(at >= a, at < b), 1), else_=0)) for a, b in itertools.pairwise(bounds)]
    query = select(*days).where(Touch.action.in_(ADD_ACTIONS), at >= bounds[0])
    async with console.services.sessions() as session:
        counts = (await session.execute(query)).one()
    return [(a.strftime("%m-%d"), int(n or 0)) for a, n in zip(bounds, counts, strict=False)]


def totals(stats: dict[str, ChannelStats]) -> dict[str, int]:
    rows = stats.values()
    adds, losses = sum(s.adds for s in rows), sum(s.losses for s in rows)
    return {
        "adds": adds,
        "losses": losses,
        "net": adds - losses,
        "delivered": sum(s.welcomes["delivered"] for s in rows),
        "expired": sum(s.welcomes["expired"] for s in rows),
    }


@page("read")
async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    period = request.query.get("period", "7")
    if period not in PERIODS:
        period = "7"
    async with console.services.sessions() as session:
        stats = await channel_stats(session, console.now(), day_start(console, PERIODS[period]))
    names = {c.code: c.name for c in channels_of(console.services.content).channels}
    ordered = sorted(stats.values(), key=lambda s: -s.adds)
    trend = await daily_adds(console)
    chart = trend_line(trend, t("overview.trend_desc", max=max((v for _, v in trend), default=0)))
    bars = funnel(
        [(names.get(s.code, s.code), (s.adds, s.welcomes["delivered"], s.retained_7d)) for s in ordered[:8]],
        (t("funnel.adds"), t("funnel.delivered"), t("funnel.retained")),
        t("overview.funnel_desc"),
    )
    health: dict[str, Any] = await api_json(request, viewer, operations.health)
    return console.render(
        "overview.html", viewer=viewer, nav="overview", period=period, periods=PERIODS, totals=totals(stats),
        rows=ordered, names=names, trend=chart, funnel=bars, health=health,
    )  # fmt: skip
