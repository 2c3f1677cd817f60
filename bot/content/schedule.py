"""Time in SOP content: drip delays, 5-field cron and calendar dates, all in the configured timezone.

Delays (measured from the trigger, not from the previous step):

* ``"0m"``, ``"3h"``, ``"2d"``, ``"1d12h"``, ``"1h30m"`` — a fixed duration after the trigger;
* ``"next_day 10:00"`` — 10:00 on the local day after the trigger (same as ``"day 1 10:00"``);
* ``"day N HH:MM"`` — HH:MM on the N-th local day after the trigger's day (``day 0`` is that day; a
  time that has already passed when the drip starts is due at once).

Cron is standard 5-field cron (minute hour day-of-month month day-of-week) with standard day-of-week
numbers (0 or 7 = Sunday, 1 = Monday, names ``sun``…``sat``), computed by croniter, which uses exactly
those conventions; croniter's extensions (``L``, ``#``, ``?``, ``H``, ``R``, ``@daily``, a 6th field)
are refused, and so is restricting both day fields (croniter, like classic cron, would OR them).
APScheduler only wakes the jobs, through :class:`CronTrigger`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from croniter import CroniterBadDateError, CroniterError, croniter

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


_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ALLOWED = ("0-59", "0-23", "1-31", "1-12 or jan..dec", "0-7 (0 and 7 = Sunday) or sun..sat")
_FIELD_TEXT = re.compile(r"[0-9a-z*,/-]+")
_MICROSECOND = timedelta(microseconds=1)


def _check_field(expr: str, index: int, text: str) -> None:
    """One field alone: croniter's syntax minus its extensions (``L``, ``#``, ``?``, ``H``, ``R``)."""
    lowered = text.lower()
    names = _MONTHS if index == 3 else _DAYS if index == 4 else ()
    words_ok = all(word in names for word in re.findall(r"[a-z]+", lowered))
    probe = " ".join(text if i == index else "*" for i in range(5))
    try:
        ok = bool(_FIELD_TEXT.fullmatch(lowered)) and words_ok and bool(croniter.expand(probe))
    except CroniterError:
        ok = False
    if not ok:
        raise ScheduleError(f"{expr!r}: {_FIELDS[index]} {text!r} is not valid (allowed: {_ALLOWED[index]})")


def _parse_cron(expr: str) -> str:
    """The expression, checked: 5 standard fields, not both day fields restricted, fires at all."""
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(f"{expr!r} has {len(fields)} fields; cron needs 5 (minute hour day month weekday)")
    for index, text in enumerate(fields):
        _check_field(expr, index, text)
    normal = " ".join(fields)
    expanded, _ = croniter.expand(normal)
    if expanded[2] != ["*"] and expanded[4] != ["*"]:
        # croniter (day_or=True, like classic cron) would fire on either day; operators usually mean both.
        raise ScheduleError(
            f"{expr!r} restricts both day-of-month and day-of-week (cron fires on either, which is rarely "
            "what is meant); write two posts"
        )
    try:
        croniter(normal, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(f"{expr!r} never fires") from None
    return normal


def _next_fire(expr: str, tz: tzinfo, at_or_after: datetime) -> datetime | None:
    """The first fire at or after ``at_or_after``, in ``tz``. A wall-clock time that a DST change repeats
    fires once (its first occurrence); one that a DST change skips fires when the gap ends (croniter)."""
    fires = croniter(expr, at_or_after.astimezone(tz) - _MICROSECOND)
    while True:
        try:
            fire: datetime = fires.get_next(datetime)
        except CroniterBadDateError:
            return None
        first = fire.replace(tzinfo=None).replace(tzinfo=tz, fold=0)
        if first.astimezone(UTC) == fire.astimezone(UTC):
            return fire


class CronTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler ships no type hints
    """An APScheduler trigger firing at a checked 5-field cron's times (see :func:`cron_trigger`)."""

    def __init__(self, expr: str, tz: tzinfo) -> None:
        self.expr, self.timezone = expr, tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now if previous_fire_time is None else max(now, previous_fire_time + _MICROSECOND)
        return _next_fire(self.expr, self.timezone, start)

    def __str__(self) -> str:
        return f"cron[{self.expr}]"


def cron_trigger(expr: str, tz: tzinfo) -> CronTrigger:
    """An APScheduler trigger for a standard 5-field expression (croniter); raises ScheduleError."""
    return CronTrigger(_parse_cron(expr), tz)


def cron_fires(expr: str, tz: tzinfo, start: datetime, end: datetime, limit: int = 5000) -> list[datetime]:
    """Fire times in ``[start, end)`` (at most ``limit``), timezone-aware in ``tz``."""
    normal = _parse_cron(expr)
    out: list[datetime] = []
    cursor = start
    while len(out) < limit:
        fire = _next_fire(normal, tz, cursor)
        if fire is None or fire >= end:
            break
        out.append(fire)
        cursor = fire + _MICROSECOND
    return out


def local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    cron: str  # standard 5-field cron in the configured timezone

    def fires(self, start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
        return cron_fires(self.cron, tz, start, end)


@dataclass(frozen=True, slots=True)
class DatesSchedule:
    dates: tuple[datetime, ...]  # naive wall-clock times in the configured timezone

    def fires(self, start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
        aware = (d.replace(tzinfo=tz) for d in self.dates)
        return sorted(d for d in aware if start <= d < end)
