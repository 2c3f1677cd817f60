"""SOP content (issue 4): drips, group posts, budget — delays, cron, the category mix, the shipped files."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.content.schedule import Delay, ScheduleError, cron_fires, cron_trigger, parse_delay
from handlers.content import check_content, load_content
from handlers.sop.content import sop_of
from handlers.sop.content.mix import category_mix, mix_report
from handlers.sop.content.model import (
    Budget,
    Category,
    Delivery,
    QuotaPolicy,
    RelativeSchedule,
    StopKind,
    TriggerKind,
)
from tests.support.settings import SHIPPED_CONTENT

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


# --- the shipped content -------------------------------------------------------------------------------


def test_shipped_drips_follow_the_48_hour_playbook() -> None:
    content = load_content(SHIPPED_CONTENT)
    drip = sop_of(content).drip("mp_48h")
    assert drip is not None and drip.trigger.kind is TriggerKind.FOLLOWED
    assert [s.delay.after for s in drip.steps] == [timedelta(0), timedelta(hours=3), timedelta(hours=6)]
    assert {s.delivery for s in drip.steps} == {Delivery.MP_CUSTOM}
    assert [s.id for s in drip.steps] == ["1", "2", "3"]
    assert {c.kind for c in drip.stop_when} >= {StopKind.PURCHASED, StopKind.ADDED_WECOM_FRIEND}
    assert drip.then_start == "mp_recall" and drip.then_tags == ("旅程/新粉48小时完成",)
    assert sop_of(content).drips_for(TriggerKind.FOLLOWED, "mp_poster_618") == (drip,)
    assert [d.id for d in sop_of(content).drips_for(TriggerKind.FRIEND_ADDED, "pkgcard")] == ["pkgcard_followup"]
    assert sop_of(content).drips_for(TriggerKind.FRIEND_ADDED, "live_0611") == ()
    assert [d.id for d in sop_of(content).drips_for(TriggerKind.TAG_ADDED, tag="旅程/待召回")] == ["mp_recall"]


def test_shipped_group_posts_and_budget() -> None:
    content = load_content(SHIPPED_CONTENT)
    assert len(sop_of(content).group_posts) == 12
    rules = next(p for p in sop_of(content).group_posts if p.id == "new_group_rules")
    assert isinstance(rules.schedule, RelativeSchedule) and rules.schedule.delay.day_offset == 1
    assert sop_of(content).budget.max_marketing_per_day == 1
    assert sop_of(content).budget.group_send_quota is QuotaPolicy.DAYS_IN_MONTH
    assert str(sop_of(content).budget.quiet_hours) == "22:00-08:00"


def test_shipped_mix_is_3_3_3_1_every_full_week() -> None:
    content = load_content(SHIPPED_CONTENT)
    weeks = category_mix(content, date(2027, 3, 1), tz=SH)  # no calendar dates in March 2027
    assert [w.days for w in weeks] == [7, 7, 7, 7, 2]
    for week in weeks[:4]:
        assert week.ratio() == "3 : 3 : 3 : 1" and not week.mostly_marketing


def test_content_check_prints_the_mix_after_the_ok_line() -> None:
    out = io.StringIO()
    assert check_content(str(SHIPPED_CONTENT), out, today=date(2026, 11, 23), tz=SH) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "OK: 29 messages, 30 tags"
    assert lines[3] == "Group posts, 30 days from 2026-11-23 (Asia/Shanghai): marketing : interaction : care : daily"
    assert "  2026-11-23 +7d: 3 : 3 : 3 : 1" in lines
    assert "  2026-12-07 +7d: 5 : 3 : 3 : 1" in lines  # Double 12 adds two marketing posts: 5 of 12
    assert not [line for line in lines if line.startswith("warning:")]


def test_budget_defaults_without_a_file(tmp_path: Path) -> None:
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    (root / "budget.toml").unlink()
    assert sop_of(load_content(root)).budget == Budget()


def test_quiet_hours_can_be_switched_off(tmp_path: Path) -> None:
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    (root / "budget.toml").write_text("[budget]\nquiet_hours = false\nmissed_after = '2h'\n", encoding="utf-8")
    budget = sop_of(load_content(root)).budget
    assert budget.quiet_hours is None and budget.missed_after == timedelta(hours=2)


# --- delays --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0m", Delay(after=timedelta(0))),
        ("3h", Delay(after=timedelta(hours=3))),
        ("2d", Delay(after=timedelta(days=2))),
        ("1d12h", Delay(after=timedelta(hours=36))),
        ("1h30m", Delay(after=timedelta(minutes=90))),
        ("next_day 10:00", Delay(at=time(10), day_offset=1)),
        ("day 2 10:00", Delay(at=time(10), day_offset=2)),
        ("day  0   20:30", Delay(at=time(20, 30), day_offset=0)),
    ],
)
def test_delays_parse_to_a_typed_value(raw: str, expected: Delay) -> None:
    assert parse_delay(raw) == expected


@pytest.mark.parametrize("raw", ["", "3 hours", "h", "-1h", "next_day", "next_day 24:00", "day 2 10:60", "400d"])
def test_bad_delays_are_refused(raw: str) -> None:
    with pytest.raises(ScheduleError):
        parse_delay(raw)


def test_due_after_uses_local_days_across_midnight_in_shanghai() -> None:
    next_day = parse_delay("next_day 10:00")
    # 23:30 on the 23rd in Shanghai: "next day" is the 24th.
    assert next_day.due_after(at(2026, 11, 23, 23, 30), SH) == at(2026, 11, 24, 10)
    # 00:30 on the 24th in Shanghai is still the 23rd in UTC: "next day" is the 25th, not the 24th.
    start = at(2026, 11, 24, 0, 30).astimezone(UTC)
    assert start.date() == date(2026, 11, 23)
    due = next_day.due_after(start, SH)
    assert due == at(2026, 11, 25, 10) and due.tzinfo is UTC
    assert parse_delay("3h").due_after(at(2026, 11, 23, 23, 30), SH) == at(2026, 11, 24, 2, 30)
    assert parse_delay("day 2 10:00").due_after(at(2026, 11, 23, 9), SH) == at(2026, 11, 25, 10)


def test_a_day_0_time_already_past_is_due_at_once() -> None:
    tonight = parse_delay("day 0 20:00")
    assert tonight.due_after(at(2026, 11, 23, 9), SH) == at(2026, 11, 23, 20)
    assert tonight.due_after(at(2026, 11, 23, 21), SH) == at(2026, 11, 23, 21)


def test_due_after_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_delay("3h").due_after(datetime(2026, 11, 23, 9), SH)


def test_bounds_cover_every_start_time_of_day() -> None:
    assert parse_delay("3h").bounds() == (timedelta(hours=3), timedelta(hours=3))
    assert parse_delay("next_day 10:00").bounds() == (timedelta(hours=10), timedelta(hours=34))
    assert parse_delay("day 0 20:00").bounds() == (timedelta(0), timedelta(hours=20))


# --- cron ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", "mon tue wed thu fri sat sun"),
        ("1", "mon"),
        ("0", "sun"),
        ("7", "sun"),
        ("0,7", "sun"),
        ("1-5", "mon tue wed thu fri"),
        ("5-7", "fri sat sun"),
        ("fri-sun", "fri sat sun"),
        ("FRI-SUN", "fri sat sun"),
        ("*/2", "tue thu sat sun"),  # standard cron: Sunday (0), Tuesday, Thursday, Saturday
        ("1-7/2", "mon wed fri sun"),
        ("mon-fri/2", "mon wed fri"),
        ("1,3,5", "mon wed fri"),
        ("sat,sun", "sat sun"),
        ("5-1", "mon fri sat sun"),  # croniter wraps a range past Saturday round to the week's start
    ],
)
def test_standard_weekday_numbers(field: str, days: str) -> None:
    fires = cron_fires(f"0 10 * * {field}", SH, at(2026, 11, 23, 0), at(2026, 11, 30, 0))  # Mon 23rd .. Sun 29th
    assert [f.strftime("%a").lower() for f in fires] == days.split()


def test_cron_fires_on_standard_weekdays_in_local_time() -> None:
    fires = cron_fires("0 10 * * 1-5", SH, at(2026, 11, 23, 0), at(2026, 11, 30, 0))  # Mon 23rd .. Sun 29th
    assert fires == [at(2026, 11, d, 10) for d in range(23, 28)]
    assert [f.utcoffset() for f in fires] == [timedelta(hours=8)] * 5


def test_cron_fires_include_the_start_and_exclude_the_end() -> None:
    fires = cron_fires("0 10 * * *", SH, at(2026, 11, 23, 10), at(2026, 11, 25, 10))
    assert fires == [at(2026, 11, 23, 10), at(2026, 11, 24, 10)]
    assert cron_fires("0 10 29 2 *", SH, at(2026, 1, 1, 0), at(2029, 1, 1, 0)) == [at(2028, 2, 29, 10)]


def test_cron_across_daylight_saving_changes() -> None:
    """A wall-clock time that a DST change repeats fires once; one it skips fires when the gap ends."""
    berlin = ZoneInfo("Europe/Berlin")
    autumn = cron_fires(
        "30 2 * * *", berlin, datetime(2026, 10, 24, tzinfo=berlin), datetime(2026, 10, 27, tzinfo=berlin)
    )
    assert [f.astimezone(UTC).strftime("%d %H:%M") for f in autumn] == ["24 00:30", "25 00:30", "26 01:30"]
    half_hours = cron_fires(
        "*/30 * * * *",
        berlin,
        datetime(2026, 10, 25, 1, 50, tzinfo=berlin),
        datetime(2026, 10, 25, 3, 50, tzinfo=berlin),
    )
    assert [f.strftime("%H:%M%z") for f in half_hours] == ["02:00+0200", "02:30+0200", "03:00+0100", "03:30+0100"]
    spring = cron_fires(
        "30 2 * * *", berlin, datetime(2026, 3, 28, tzinfo=berlin), datetime(2026, 3, 30, tzinfo=berlin)
    )
    assert [f.strftime("%d %H:%M%z") for f in spring] == ["28 02:30+0100", "29 03:00+0200"]


def test_cron_trigger_wakes_apscheduler_at_the_fire_times() -> None:
    trigger = cron_trigger("0 10 * * 1", SH)
    assert trigger.get_next_fire_time(None, at(2026, 11, 23, 10)) == at(2026, 11, 23, 10)
    assert trigger.get_next_fire_time(at(2026, 11, 23, 10), at(2026, 11, 23, 10)) == at(2026, 11, 30, 10)
    assert trigger.get_next_fire_time(None, at(2026, 11, 23, 10, 1)) == at(2026, 11, 30, 10)


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("0 25 * * *", "hour '25' is not valid (allowed: 0-23)"),
        ("0 10 * *", "has 4 fields; cron needs 5"),
        ("0 10 * * 1 2026", "has 6 fields"),
        ("x 10 * * *", "minute 'x' is not valid (allowed: 0-59)"),
        ("0 10 * * 8", "day-of-week '8' is not valid (allowed: 0-7 (0 and 7 = Sunday) or sun..sat)"),
        ("0 10 * * */0", "day-of-week '*/0' is not valid"),
        ("0 10 * mon *", "month 'mon' is not valid"),
        ("0 10 * * jan", "day-of-week 'jan' is not valid"),
        ("0 10 L * *", "day-of-month 'L' is not valid"),
        ("0 10 * * 1#2", "day-of-week '1#2' is not valid"),
        ("0 10 ? * *", "day-of-month '?' is not valid"),
        ("H 10 * * *", "minute 'H' is not valid"),
        ("R 10 * * *", "minute 'R' is not valid"),
        ("@daily", "has 1 fields"),
        ("0 10 1 * 1", "restricts both day-of-month and day-of-week"),
        ("0 10 */2 * 1", "restricts both day-of-month and day-of-week"),
        ("0 10 1-31 * mon", "restricts both day-of-month and day-of-week"),
        ("0 10 31 2 *", "never fires"),
    ],
)
def test_bad_cron_is_refused(expr: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=None) as caught:
        cron_trigger(expr, SH)
    assert reason in str(caught.value)


# --- the category mix on a known calendar --------------------------------------------------------------

CALENDAR = """
[[group_posts]]
id = "weekday_deal"
cron = "0 10 * * 1-5"
targets = { tags = ["群类型/福利群"] }
delivery = "wecom_task_group"
category = "marketing"
message = "group_monday_new"

[[group_posts]]
id = "saturday_vote"
cron = "0 20 * * 6"
targets = { names = ["*"] }
delivery = "app_to_owner"
category = "interaction"
message = "group_taste_vote"

[[group_posts]]
id = "care_calendar"
dates = ["2026-06-03 09:00", "2026-06-08 09:00", "2026-06-09 09:00", "2026-06-10 09:00", "2026-06-20 09:00"]
targets = { owners = ["lulu"] }
delivery = "app_to_owner"
category = "care"
message = "group_snack_tips"

[[group_posts]]
id = "sunday_late_chat"
cron = "30 23 * * 0"
targets = { chat_ids = ["wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"] }
delivery = "app_to_owner"
category = "daily"
message = "group_sunday_chat"

[[group_posts]]
id = "paused"
enabled = false
cron = "0 9 * * *"
targets = { names = ["*"] }
delivery = "app_to_owner"
category = "marketing"
message = "group_friday_stock"

[[group_posts]]
id = "new_group"
after = "day 1 10:00"
from = "group_created"
targets = { names = ["*"] }
delivery = "app_to_owner"
category = "care"
message = "group_welcome_rules"
"""


@pytest.fixture
def calendar(tmp_path: Path) -> Path:
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    (root / "group_sop.toml").write_text(CALENDAR, encoding="utf-8")
    return root


def test_category_mix_counts_each_fire_per_local_week(calendar: Path) -> None:
    weeks = category_mix(load_content(calendar), date(2026, 6, 1), days=14, tz=SH)  # Monday 1 June
    assert [w.start for w in weeks] == [date(2026, 6, 1), date(2026, 6, 8)]
    first, second = weeks
    assert first.counts == {Category.MARKETING: 5, Category.INTERACTION: 1, Category.CARE: 1, Category.DAILY: 1}
    assert second.counts == {Category.MARKETING: 5, Category.INTERACTION: 1, Category.CARE: 3, Category.DAILY: 1}
    assert first.mostly_marketing and first.marketing_share == 5 / 8
    assert not second.mostly_marketing  # exactly half is not "more than half"


def test_sunday_23_30_local_stays_in_its_week(calendar: Path) -> None:
    """23:30 on Sunday 7 June in Shanghai is 15:30 UTC: it belongs to the week of 1 June either way, and
    the Sunday of 14 June (outside 14 days) is not counted."""
    weeks = category_mix(load_content(calendar), date(2026, 6, 1), days=14, tz=SH)
    assert [w.counts[Category.DAILY] for w in weeks] == [1, 1]
    weeks = category_mix(load_content(calendar), date(2026, 6, 1), days=14, tz=ZoneInfo("UTC"))
    assert [w.counts[Category.DAILY] for w in weeks] == [1, 1]


def test_mix_report_warns_about_mostly_marketing_weeks(calendar: Path) -> None:
    out = io.StringIO()
    assert check_content(str(calendar), out, today=date(2026, 6, 1), tz=SH) == 0  # warnings don't fail
    lines = out.getvalue().splitlines()
    assert "  total 22 : 4 : 5 : 4 (guideline 3:3:3:1)" in lines
    assert "  2026-06-29 +2d: 2 : 0 : 0 : 0" in lines
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        "warning: week of 2026-06-01: 5 of 8 posts are marketing (more than half)",
        "warning: week of 2026-06-15: 5 of 8 posts are marketing (more than half)",
        "warning: week of 2026-06-22: 5 of 7 posts are marketing (more than half)",
        "warning: week of 2026-06-29: 2 of 2 posts are marketing (more than half)",
    ]
    assert "warning: week of 2026-06-08" not in "\n".join(lines)
    assert "  not counted (relative to each group or member): new_group" in lines


def test_group_send_quota_warning(calendar: Path) -> None:
    text = CALENDAR.replace('cron = "0 10 * * 1-5"', 'cron = "0 10,20 * * *"')
    (calendar / "group_sop.toml").write_text(text, encoding="utf-8")
    lines = mix_report(load_content(calendar), date(2026, 6, 1), SH)
    assert "warning: group post 'weekday_deal' fires 60 times; a group receives at most 30" in lines
