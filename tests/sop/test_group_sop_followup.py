"""Group posts after the send: confirmation, reminders (≤ 3 per 24 h), app messages, robot pacing; the scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.rig import Rig
from bot.scheduler import Scheduler, due_fires
from bot.simulator.wecom_messages import confirm_msg_template
from handlers.content import load_content
from handlers.sop.content import sop_of
from handlers.sop.content.group_tags import GROUP_TAGS
from handlers.sop.content.model import Delivery, Targets
from handlers.sop.group_sop import MARKER, GroupSop
from handlers.sop.group_sop_results import check_group_tasks
from handlers.sop.group_sop_robots import RobotCaller, RobotKeys, load_robot_keys
from handlers.sop.tables import GroupFire
from tests.sop.group_posts import OWNERS, TEN_AM_SHANGHAI, daily_post, seed_groups, use_content
from tests.support.apps import drain, rows, start_rig

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    clock.set(TEN_AM_SHANGHAI)
    rig = await start_rig(settings, clock, rng=7, workers=False)  # the tests fire the posts themselves
    yield rig
    await rig.close()


async def test_unconfirmed_tasks_are_reminded_at_most_three_times_a_day_then_confirmed(
    rig: Rig, clock: FrozenClock
) -> None:
    await seed_groups(rig, clock, owners=OWNERS[:1])
    use_content(rig.services, daily_post())
    await GroupSop(rig.services).fire("daily_tip", TEN_AM_SHANGHAI)
    await drain(rig, clock)
    [fire] = await rows(rig, GroupFire, GroupFire.target != MARKER)
    assert fire.state == "sent" and fire.msgid
    for _ in range(12):  # a day of checks every two hours, the owner never taps "send"
        clock.advance(timedelta(hours=2))
        await check_group_tasks(rig.services)
        await drain(rig, clock)
    reminds = rig.state.calls_to("externalcontact/remind_groupmsg_send")
    assert 1 <= len(reminds) <= 3 and all(c.response["errcode"] == 0 for c in reminds)

    confirm_msg_template(rig.state, fire.msgid)
    clock.advance(timedelta(hours=2))
    await check_group_tasks(rig.services)
    await drain(rig, clock)
    [fire] = await rows(rig, GroupFire, GroupFire.target != MARKER)
    assert fire.state == "confirmed"
    assert fire.results is not None and set(fire.results["chats"].values()) == {1}
    assert len(fire.results["chats"]) == 50


async def test_app_to_owner_messages_each_owner_once_with_the_group_names(rig: Rig, clock: FrozenClock) -> None:
    await seed_groups(rig, clock, owners=OWNERS[:3])
    use_content(rig.services, daily_post(delivery=Delivery.APP_TO_OWNER))
    assert await GroupSop(rig.services).fire("daily_tip", TEN_AM_SHANGHAI) == "done"
    await drain(rig, clock)
    sent = [c.body or {} for c in rig.state.calls_to("message/send")]
    assert sorted(b["touser"] for b in sent) == sorted(OWNERS[:3])
    assert all("山野小食福利群" in b["text"]["content"] for b in sent)
    assert {f.state for f in await rows(rig, GroupFire, GroupFire.target != MARKER)} == {"sent"}


async def test_robot_posts_are_paced_under_20_a_minute_per_robot(rig: Rig, clock: FrozenClock) -> None:
    groups = await seed_groups(rig, clock, owners=OWNERS[:1])
    chats = groups[OWNERS[0]][:25]
    key = rig.state.add_robot(chats[0])  # one robot added to 25 groups: one 20/min budget
    rig.services.clients["robot"] = RobotCaller(rig.services.clients["wecom"], RobotKeys(dict.fromkeys(chats, key)))
    use_content(rig.services, daily_post(delivery=Delivery.GROUP_ROBOT, targets=Targets(owners=(OWNERS[0],))))
    await GroupSop(rig.services).fire("daily_tip", TEN_AM_SHANGHAI)
    await drain(rig, clock, horizon=timedelta(minutes=5), rounds=100)
    calls = rig.state.calls_to("webhook/send")
    assert len(calls) == 25 and all(c.response["errcode"] == 0 for c in calls)
    times = [c.at for c in calls]
    assert all(sum(1 for t in times if start <= t < start + timedelta(minutes=1)) <= 20 for start in times)
    fires = await rows(rig, GroupFire, GroupFire.target != MARKER)
    assert sum(f.state == "sent" for f in fires) == 25
    assert {f.reason for f in fires if f.state == "skipped"} == {"no robot webhook key for this group"}
    assert key not in repr(rig.services.clients["robot"].keys)  # type: ignore[attr-defined]


def test_robot_keys_are_secret(tmp_path: Path) -> None:
    path = tmp_path / "group_robots.toml"
    path.write_text('[group_robots]\nwrAAA = "secret-key-1"\n', encoding="utf-8")
    keys = load_robot_keys(path)
    assert keys.has("wrAAA") and not keys.has("wrBBB")
    assert "secret-key-1" not in repr(keys) and "secret-key-1" not in repr(keys.key("wrAAA"))


def test_due_fires_are_half_open_in_the_configured_timezone() -> None:
    posts = [daily_post(), daily_post("weekly", "0 20 * * 0")]
    start = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 Shanghai
    fires = due_fires(posts, start, start + timedelta(days=7), SHANGHAI)
    assert fires[0] == ("daily_tip", start + timedelta(days=1))  # (since, until]: 10:00 today excluded
    assert ("weekly", datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) in fires  # Sunday 20:00 Shanghai
    assert len(fires) == 8


async def test_scheduler_builds_one_job_per_post_and_stops_cleanly(clock: FrozenClock) -> None:
    content = load_content("content")
    scheduler = Scheduler(SHANGHAI, clock)
    fired: list[tuple[str, datetime]] = []

    async def fire(post_id: str, at: datetime) -> None:
        fired.append((post_id, at))

    added = scheduler.schedule_posts(sop_of(content).group_posts, fire)
    cron_posts = [p for p in sop_of(content).group_posts if p.enabled and hasattr(p.schedule, "cron")]
    assert added >= len(cron_posts)
    assert f"post:{cron_posts[0].id}" in scheduler.job_ids
    ticks: list[int] = []

    async def tick() -> None:
        ticks.append(1)

    scheduler.every("tick", 3600, tick)
    scheduler.start()
    for _ in range(20):
        if ticks:
            break
        await asyncio.sleep(0.05)
    await scheduler.stop(1)
    assert ticks == [1]


def test_group_tags_come_from_the_content() -> None:
    tags = load_content("content").one(GROUP_TAGS)
    assert tags is not None
    assert "群类型/福利群" in tags.tags_of("wrX", "山野小食福利群3")
    assert tags.tags_of("wrX", "别的群") == frozenset()
