"""Time in SOP content: drip delays, 5-field cron and calendar dates, all in the configured timezone.

Delays (measured from the trigger, not from the previous step):

* ``"0m"``, ``"3h"``, ``"2d"``, ``"1d12h"``, ``"1h30m"`` — a fixed duration after the trigger;
* ``"next_day 10:00"`` — 10:00 on the local day after the trigger (same as ``"day 1 10:00"``);
* ``"day N HH:MM"`` — HH:MM on the N-th local day after the trigger's day (``day 0`` is that day; a
  time that has already passed when the drip starts is due at once).

Cron is standard 5-field cron (minute hour day-of-month month day-of-week) with standard day-of-week
numbers (0 or 7 = Sunday, 1 = Monday, names ``mon``…``sun``). APScheduler numbers weekdays from Monday
and ANDs day-of-month with day-of-week, so the expression is translated to weekday names here and
restricting both day fields is refused (cron would OR them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")
_DAY_AT = re.compile(r"(?:next_day|day\s+(\d+))\s+(\d{1,2}):(\d{2})")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})")
_ONE_DAY = timedelta(days=1)
MAX_DAYS = 366  # a drip or relative post further out is almost certainly a typo


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Delay:
    """When a step is due relative to its start: ``after`` a duration, or ``at`` a local time
    ``day_offset`` local days after the start's day. Exactly one of ``after``/``at`` is set."""

    after: timedelta | None = None
    at: time | None = None
    day_offset: int = 0
    text: str = field(default="", compare=False)

    def due_after(self, start: datetime, tz: tzinfo) -> datetime:
        """The due time for a start (timezone-aware), in ``start``'s timezone; local days in ``tz``."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.after is not None:
            return start + self.after
        assert self.at is not None
        day = start.astimezone(tz).date() + timedelta(days=self.day_offset)
        due = datetime.combine(day, self.at, tzinfo=tz).astimezone(UTC).astimezone(start.tzinfo)
        return max(due, start)

    def bounds(self) -> tuple[timedelta, timedelta]:
        """The earliest and latest offset from the start, over every possible start time of day."""
        if self.after is not None:
            return self.after, self.after
        assert self.at is not None
        latest = timedelta(days=self.day_offset, hours=self.at.hour, minutes=self.at.minute)
        return max(timedelta(0), latest - _ONE_DAY), latest

    def __str__(self) -> str:
        return self.text


def _clock(hour: str, minute: str, raw: str) -> time:
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise ScheduleError(f"{raw!r} has an invalid time of day (00:00-23:59)")
    return time(h, m)


def parse_delay(raw: str) -> Delay:
    """``"3h"``, ``"next_day 10:00"``, ``"day 2 10:00"`` (see the module docstring)."""
    text = " ".join(raw.split())
    match = _DURATION.fullmatch(text)
    if match is not None and any(match.groups()):
        d, h, m = (int(g or 0) for g in match.groups())
        after = timedelta(days=d, hours=h, minutes=m)
        if after > timedelta(days=MAX_DAYS):
            raise ScheduleError(f"{raw!r} is more than {MAX_DAYS} days")
        return Delay(after=after, text=text)
    match = _DAY_AT.fullmatch(text)
    if match is None:
        raise ScheduleError(f'{raw!r} is not a delay like "0m", "3h", "2d", "next_day 10:00" or "day 2 10:00"')
    offset = 1 if match.group(1) is None else int(match.group(1))
    if offset > MAX_DAYS:
        raise ScheduleError(f"{raw!r} is more than {MAX_DAYS} days")
    return Delay(at=_clock(match.group(2), match.group(3), raw), day_offset=offset, text=text)


def parse_local_datetime(raw: str) -> datetime:
    """``"2026-12-01 10:00"``: a naive wall-clock time, read in the configured timezone when used."""
    match = _DATE.fullmatch(raw.strip())
    if match is None:
        raise ScheduleError(f'{raw!r} is not a date and time like "2026-12-01 10:00"')
    y, mo, d, h, mi = (int(g) for g in match.groups())
    try:
        return datetime(y, mo, d, h, mi)
    except ValueError as exc:
        raise ScheduleError(f"{raw!r}: {exc}") from None


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # standard cron numbering: 0 = Sunday
_APS_ORDER = (1, 2, 3, 4, 5, 6, 0)  # APScheduler lists weekdays Monday first


def _dow_value(token: str) -> int:
    lowered = token.lower()
    if lowered in _DOW_NAMES:
        return _DOW_NAMES.index(lowered)
    if token.isdigit() and int(token) <= 7:
        return int(token)
    raise ScheduleError(f"day-of-week {token!r}: use 0-7 (0 and 7 = Sunday) or sun..sat")


def _dow_part(part: str) -> set[int]:
    body, slash, step_text = part.partition("/")
    if slash and not (step_text.isdigit() and int(step_text) >= 1):
        raise ScheduleError(f"day-of-week {part!r}: the step after '/' must be a number ≥ 1")
    step = int(step_text) if slash else 1
    if body == "*":
        lo, hi = 0, 6
    elif "-" in body:
        first, _, last = body.partition("-")
        lo, hi = _dow_value(first), _dow_value(last)
        hi = 7 if hi == 0 and lo > 0 else hi  # "fri-sun": Sunday as the end of a range is 7
        if lo > hi:
            raise ScheduleError(f"day-of-week range {body!r} runs backwards")
    else:
        lo = _dow_value(body)
        hi = 6 if slash else lo
    return {d % 7 for d in range(lo, hi + 1, step)}


def weekday_names(field_text: str) -> str:
    """A standard-cron day-of-week field as APScheduler weekday names (``"1-5"`` → ``"mon,…,fri"``)."""
    if field_text == "*":
        return "*"
    days: set[int] = set()
    for part in field_text.split(","):
        days |= _dow_part(part)
    return ",".join(_DOW_NAMES[d] for d in _APS_ORDER if d in days)


def cron_trigger(expr: str, tz: tzinfo) -> Any:
    """An APScheduler ``CronTrigger`` for a standard 5-field expression; raises ScheduleError."""
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(f"{expr!r} has {len(fields)} fields; cron needs 5 (minute hour day month weekday)")
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ScheduleError(
            f"{expr!r} restricts both day-of-month and day-of-week (cron fires on either, "
            "APScheduler on both); write two posts"
        )
    try:
        trigger = CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=weekday_names(dow), timezone=tz
        )
    except ValueError as exc:
        raise ScheduleError(f"{expr!r}: {exc}") from None
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=tz)) is None:
        raise ScheduleError(f"{expr!r} never fires")
    return trigger


def cron_fires(expr: str, tz: tzinfo, start: datetime, end: datetime, limit: int = 5000) -> list[datetime]:
    """Fire times in ``[start, end)`` (at most ``limit``), timezone-aware in ``tz``."""
    trigger = cron_trigger(expr, tz)
    out: list[datetime] = []
    cursor = start
    while len(out) < limit:
        fire: datetime | None = trigger.get_next_fire_time(None, cursor)
        if fire is None or fire >= end:
            break
        out.append(fire)
        cursor = fire + timedelta(seconds=1)
    return out


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)
