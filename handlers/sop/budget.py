"""The contact budget: one ledger of automated messages per customer (and per group), and the rules on it.

Every automated message — a drip step, a group post — asks :func:`decide` before it is queued and
leaves one :class:`~handlers.sop.tables.ContactLedger` row with :func:`record`, whether it was sent, deferred or
skipped, with the reason (``sop status`` shows them). Only ``sent`` rows spend the budget.

Rules, in the order they are checked (every message spends the customer's patience):

1. **Quiet hours** (``budget.quiet_hours``, local time in the configured timezone) → *defer* to the end
   of the quiet hours.
2. **Platform quota** for group-send tasks (``externalcontact/add_msg_template``,
   docs/platform.md#group-send-tasks): each
   customer / group receives at most "days in the month" (or 7 per week, or 1 per day, as the corp's
   admin chose: ``budget.group_send_quota``) → *skip*: the platform would refuse the task anyway
   (send-result status 3), and a stale message is worse than none. Counted from our own sent rows of
   ``wecom_task_*`` deliveries (a task queued counts even if the staff never confirms it: conservative).
3. **Marketing per local day** (``max_marketing_per_day``) → *defer* to the next local day (after quiet hours).
4. **Automated per local day** (``max_automated_per_day``, every category) → *defer* likewise.
5. **Automated per week** (``max_automated_per_week``, the local day and the 6 before it) → *defer* to the
   day the oldest counted message leaves the 7-day window.

The functions take a subject (``customer_id`` or ``chat_id``) so the group SOP uses the same ledger for
per-group quota. Call :func:`lock_subject` first in the same transaction: on PostgreSQL it locks the
customer (or group) row so two workers cannot both spend the last unit; SQLite serialises writers anyway.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Literal

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content.model import Window
from bot.db.models import Customer
from handlers.growth.tables import GroupChat
from handlers.sop.content.model import Budget, Category, Delivery, QuotaPolicy
from handlers.sop.tables import ContactLedger

Outcome = Literal["ok", "defer", "skip"]
GROUP_SEND = frozenset({Delivery.WECOM_TASK_SINGLE.value, Delivery.WECOM_TASK_GROUP.value})


@dataclass(frozen=True, slots=True)
class Decision:
    """``ok`` (send now), ``defer`` (try again at ``defer_until``) or ``skip`` (never), with why."""

    outcome: Outcome
    reason: str | None = None
    defer_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


OK = Decision("ok")


def local_day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def quiet_until(at: datetime, window: Window | None, tz: tzinfo) -> datetime | None:
    """The end of the quiet hours ``at`` falls in (timezone-aware), or None when ``at`` is not quiet."""
    local = at.astimezone(tz)
    if window is None or not window.contains(local.time()):
        return None
    end = datetime.combine(local.date(), time(0), tzinfo=tz) + timedelta(minutes=window.end)
    return end if end > local else end + timedelta(days=1)


def awake(at: datetime, window: Window | None, tz: tzinfo) -> datetime:
    """``at``, or the end of the quiet hours when ``at`` is inside them."""
    return quiet_until(at, window, tz) or at


def quota_period(at: datetime, policy: QuotaPolicy, tz: tzinfo) -> tuple[datetime, datetime, int]:
    """(start, end, cap) of the platform's group-send receive period containing ``at``
    (docs/platform.md#group-send-tasks)."""
    day = at.astimezone(tz).date()
    if policy is QuotaPolicy.ONE_PER_DAY:
        start = local_day_start(day, tz)
        return start, local_day_start(day + timedelta(days=1), tz), 1
    if policy is QuotaPolicy.SEVEN_PER_WEEK:  # a calendar week, Monday first
        monday = day - timedelta(days=day.weekday())
        return local_day_start(monday, tz), local_day_start(monday + timedelta(days=7), tz), 7
    first = day.replace(day=1)
    days = calendar.monthrange(day.year, day.month)[1]
    return local_day_start(first, tz), local_day_start(first + timedelta(days=days), tz), days


def _subject(customer_id: int | None, chat_id: str | None) -> ColumnElement[bool]:
    if (customer_id is None) == (chat_id is None):
        raise ValueError("give exactly one of customer_id and chat_id")
    if customer_id is not None:
        return ContactLedger.customer_id == customer_id
    return ContactLedger.chat_id == chat_id


async def lock_subject(session: AsyncSession, *, customer_id: int | None = None, chat_id: str | None = None) -> None:
    """Serialise budget decisions for one customer/group until the transaction ends (PostgreSQL row lock)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if customer_id is not None:
        await session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())
    elif chat_id is not None:
        await session.execute(select(GroupChat.chat_id).where(GroupChat.chat_id == chat_id).with_for_update())


async def _sent_since(session: AsyncSession, subject: ColumnElement[bool], since: datetime) -> list[ContactLedger]:
    rows = await session.scalars(
        select(ContactLedger).where(subject, ContactLedger.outcome == "sent", ContactLedger.at >= since)
    )
    return list(rows.all())


async def decide(
    session: AsyncSession,
    *,
    customer_id: int | None = None,
    chat_id: str | None = None,
    category: Category | str,
    delivery: Delivery | str,
    at: datetime,
    budget: Budget,
    tz: tzinfo,
) -> Decision:
    """May one more automated message of ``category`` by ``delivery`` go to this subject at ``at``?"""
    quiet = quiet_until(at, budget.quiet_hours, tz)
    if quiet is not None:
        return Decision("defer", f"quiet hours {budget.quiet_hours}", quiet)
    today = at.astimezone(tz).date()
    week_start = local_day_start(today - timedelta(days=6), tz)
    q_start, _, cap = quota_period(at, budget.group_send_quota, tz)
    sent = await _sent_since(session, _subject(customer_id, chat_id), min(week_start, q_start))
    if str(delivery) in GROUP_SEND:
        used = sum(1 for r in sent if r.delivery in GROUP_SEND and r.at >= q_start)
        if used >= cap:
            return Decision("skip", f"group-send quota reached: {used}/{cap} ({budget.group_send_quota.value})")
    return _caps(sent, str(category), at, budget, tz)


def _caps(sent: list[ContactLedger], category: str, at: datetime, budget: Budget, tz: tzinfo) -> Decision:
    today = at.astimezone(tz).date()
    tomorrow = awake(local_day_start(today + timedelta(days=1), tz), budget.quiet_hours, tz)
    day_start = local_day_start(today, tz)
    todays = [r for r in sent if r.at >= day_start]
    if category == Category.MARKETING.value:
        marketing = sum(1 for r in todays if r.category == Category.MARKETING.value)
        if marketing >= budget.max_marketing_per_day:
            return Decision("defer", f"marketing cap: {marketing}/{budget.max_marketing_per_day} today", tomorrow)
    if len(todays) >= budget.max_automated_per_day:
        return Decision("defer", f"daily cap: {len(todays)}/{budget.max_automated_per_day} today", tomorrow)
    week = [r for r in sent if r.at >= local_day_start(today - timedelta(days=6), tz)]
    if len(week) >= budget.max_automated_per_week:
        oldest = min(r.at for r in week).astimezone(tz).date()
        until = awake(local_day_start(oldest + timedelta(days=7), tz), budget.quiet_hours, tz)
        return Decision("defer", f"weekly cap: {len(week)}/{budget.max_automated_per_week} in 7 days", until)
    return OK


async def record(
    session: AsyncSession,
    *,
    customer_id: int | None = None,
    chat_id: str | None = None,
    at: datetime,
    category: Category | str,
    delivery: Delivery | str,
    source: str,
    outcome: Literal["sent", "deferred", "skipped"],
    reason: str | None = None,
) -> None:
    """One ledger row (``source``: ``drip:<id>/<step>`` or ``post:<id>``). ``sent`` rows spend the budget."""
    session.add(
        ContactLedger(
            customer_id=customer_id, chat_id=chat_id, at=at, category=str(category), delivery=str(delivery),
            source=source[:128], outcome=outcome, reason=reason,
        )
    )  # fmt: skip
