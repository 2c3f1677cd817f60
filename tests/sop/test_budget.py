"""The contact budget on its own: quiet hours, daily/weekly caps, the platform's group-send quota."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from handlers.sop.budget import Decision, decide, quiet_until, record
from handlers.sop.content.model import QUIET_HOURS, Budget, Category, Delivery, QuotaPolicy

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 local


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=TZ)


def test_quiet_hours_end_at_eight_local_on_the_right_day() -> None:
    assert quiet_until(local(23, 23, 30), QUIET_HOURS, TZ) == local(24, 8)
    assert quiet_until(local(24, 7, 59), QUIET_HOURS, TZ) == local(24, 8)
    assert quiet_until(local(24, 8), QUIET_HOURS, TZ) is None
    assert quiet_until(local(24, 21, 59), QUIET_HOURS, TZ) is None
    assert quiet_until(local(23, 23), None, TZ) is None


async def _decide(
    engine: AsyncEngine, budget: Budget, category: Category, delivery: Delivery, **subject: object
) -> Decision:
    async with async_sessionmaker(engine)() as s:
        return await decide(s, category=category, delivery=delivery, at=NOON, budget=budget, tz=TZ, **subject)  # type: ignore[arg-type]


async def _sent(engine: AsyncEngine, n: int, *, at: datetime, category: str = "care", delivery: str = "mp_custom",
                customer_id: int | None = 7, chat_id: str | None = None) -> None:  # fmt: skip
    async with async_sessionmaker(engine)() as s, s.begin():
        for _ in range(n):
            await record(s, customer_id=customer_id, chat_id=chat_id, at=at, category=category, delivery=delivery,
                         source="test", outcome="sent")  # fmt: skip


async def test_inside_quiet_hours_a_send_is_deferred_to_their_end(engine: AsyncEngine) -> None:
    async with async_sessionmaker(engine)() as s:
        night = local(23, 22, 30)
        got = await decide(s, customer_id=7, category=Category.CARE, delivery=Delivery.MP_CUSTOM, at=night,
                           budget=Budget(), tz=TZ)  # fmt: skip
    assert got == Decision("defer", "quiet hours 22:00-08:00", local(24, 8))


async def test_second_marketing_message_of_the_day_waits_for_tomorrow_morning(engine: AsyncEngine) -> None:
    await _sent(engine, 1, at=NOON - timedelta(hours=2), category="marketing")
    got = await _decide(engine, Budget(), Category.MARKETING, Delivery.MP_CUSTOM, customer_id=7)
    assert got.outcome == "defer" and got.defer_until == local(24, 8) and "marketing cap: 1/1" in (got.reason or "")
    assert (await _decide(engine, Budget(), Category.CARE, Delivery.MP_CUSTOM, customer_id=7)).ok
    assert (await _decide(engine, Budget(), Category.MARKETING, Delivery.MP_CUSTOM, customer_id=8)).ok


async def test_daily_and_weekly_caps(engine: AsyncEngine) -> None:
    await _sent(engine, 3, at=NOON - timedelta(hours=1))
    got = await _decide(engine, Budget(), Category.CARE, Delivery.MP_CUSTOM, customer_id=7)
    assert got.outcome == "defer" and (got.reason or "").startswith("daily cap: 3/3")
    weekly = Budget(max_automated_per_day=99, max_automated_per_week=4)
    await _sent(engine, 1, at=NOON - timedelta(days=5))
    got = await _decide(engine, weekly, Category.CARE, Delivery.MP_CUSTOM, customer_id=7)
    assert got.outcome == "defer" and got.defer_until == local(25, 8)  # the oldest leaves the 7-day window


async def test_group_send_quota_skips_per_customer_and_per_group(engine: AsyncEngine) -> None:
    daily = Budget(group_send_quota=QuotaPolicy.ONE_PER_DAY, max_automated_per_day=99)
    await _sent(engine, 1, at=NOON - timedelta(hours=3), delivery="wecom_task_single")
    got = await _decide(engine, daily, Category.CARE, Delivery.WECOM_TASK_SINGLE, customer_id=7)
    assert got == Decision("skip", "group-send quota reached: 1/1 (1_per_day)")
    assert (await _decide(engine, daily, Category.CARE, Delivery.MP_CUSTOM, customer_id=7)).ok  # not a group send
    await _sent(engine, 7, at=NOON - timedelta(hours=1), delivery="wecom_task_group", customer_id=None, chat_id="wrX")
    weekly = Budget(group_send_quota=QuotaPolicy.SEVEN_PER_WEEK, max_automated_per_day=99, max_automated_per_week=99)
    got = await _decide(engine, weekly, Category.DAILY, Delivery.WECOM_TASK_GROUP, chat_id="wrX")
    assert got.outcome == "skip" and "7/7" in (got.reason or "")
    assert (await _decide(engine, weekly, Category.DAILY, Delivery.WECOM_TASK_GROUP, chat_id="wrY")).ok
