"""客户流失提醒 on SQLite and PostgreSQL: a customer deleting a member tells that member by app message —
at once by day, at the end of the quiet hours by night, or in one daily digest; never when switched off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.actions import run_action
from bot.clock import FrozenClock
from bot.content import ContentError
from bot.rig import Rig
from handlers.content import load_content
from handlers.sop.group_sop_robots import RobotCaller, RobotKeys
from handlers.staff import alerts
from handlers.staff.tables import LossAlert
from tests.staff.helpers import MORNING, content_with_alerts
from tests.support.apps import drain, rows, start_rig
from tests.support.settings import make_settings

RULE = """
[loss_alerts]
via = ["app"]
quiet_hours = "22:00-08:00"
digest = {digest}
digest_at = "09:00"
text = "客户「{{customer}}」删除了你（渠道：{{channel}}）"
"""


async def _rig(db_url: str, clock: FrozenClock, tmp_path: Path, digest: bool) -> Rig:
    clock.set(MORNING)
    content = content_with_alerts(tmp_path, RULE.format(digest=str(digest).lower()))
    return await start_rig(make_settings(db_url, content_dir=str(content)), clock, rng=7)


@pytest.fixture
async def rig(db_url: str, clock: FrozenClock, tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await _rig(db_url, clock, tmp_path, digest=False)
    yield rig
    await rig.close()


def alerts_to(rig: Rig, userid: str) -> list[str]:
    return [d.body["text"]["content"] for d in rig.state.delivered if d.api == "message/send" and d.to == userid]


async def lose(rig: Rig, clock: FrozenClock, staff: str, name: str) -> str:
    added = await rig.sim.add_friend(staff, state="pkgcard", name=name)
    await drain(rig, clock)
    await rig.sim.delete_friend_by_customer(staff, added.external_userid)
    await drain(rig, clock)
    return added.external_userid


async def test_the_member_is_told_at_once_by_day(rig: Rig, clock: FrozenClock) -> None:
    await lose(rig, clock, "amy", "小王")
    [text] = alerts_to(rig, "amy")
    assert text == "客户「小王」删除了你（渠道：pkgcard）"
    [row] = await rows(rig, LossAlert)
    assert (row.staff_userid, row.state) == ("amy", "queued")


async def test_quiet_hours_hold_the_alert_until_morning(rig: Rig, clock: FrozenClock) -> None:
    clock.set(MORNING + timedelta(hours=13))  # 23:00 local
    await lose(rig, clock, "amy", "夜猫子")
    assert alerts_to(rig, "amy") == []  # not inside quiet hours
    clock.set(MORNING + timedelta(hours=21, minutes=59))  # 07:59 local
    await drain(rig, clock, horizon=timedelta(0))
    assert alerts_to(rig, "amy") == []
    clock.set(MORNING + timedelta(hours=22))  # 08:00 local: the end of the quiet hours
    await drain(rig, clock)
    assert len(alerts_to(rig, "amy")) == 1
    sent = next(d for d in rig.state.delivered if d.api == "message/send" and d.to == "amy")
    assert sent.at.astimezone(rig.services.settings.tz).hour == 8


async def test_the_daily_digest_tells_each_member_once(db_url: str, clock: FrozenClock, tmp_path: Path) -> None:
    rig = await _rig(db_url, clock, tmp_path, digest=True)
    try:
        await lose(rig, clock, "amy", "甲")
        await lose(rig, clock, "amy", "乙")
        await lose(rig, clock, "bob", "丙")
        assert await run_action(rig.services, alerts.send_digests) == 0  # today's 09:00 digest is past: tomorrow
        assert alerts_to(rig, "amy") == []
        clock.set(MORNING + timedelta(hours=23, minutes=5))  # 09:05 local the next day
        assert await run_action(rig.services, alerts.send_digests) == 2
        await drain(rig, clock)
        [amy] = alerts_to(rig, "amy")
        assert amy.startswith("今日流失 2 位客户")
        assert len(alerts_to(rig, "bob")) == 1
        assert await run_action(rig.services, alerts.send_digests) == 0  # once
    finally:
        await rig.close()


async def test_switched_off_nobody_is_told(db_url: str, clock: FrozenClock) -> None:
    clock.set(MORNING)
    rig = await start_rig(make_settings(db_url), clock, rng=7)  # the shipped staff.toml: enabled = false
    try:
        await lose(rig, clock, "amy", "小李")
        assert alerts_to(rig, "amy") == []
        assert await rows(rig, LossAlert) == []
    finally:
        await rig.close()


async def test_the_brands_group_robot_hears_it_too(db_url: str, clock: FrozenClock, tmp_path: Path) -> None:
    clock.set(MORNING)
    rule = RULE.format(digest="false").replace('via = ["app"]', 'via = ["app", "robot"]\nrobot_chat_id = "wrBrand"')
    content = content_with_alerts(tmp_path, rule)
    rig = await start_rig(make_settings(db_url, content_dir=str(content)), clock, rng=7)
    try:
        rig.state.add_group("boss", chat_id="wrBrand")
        key = rig.state.add_robot("wrBrand")
        rig.services.clients["robot"] = RobotCaller(rig.services.clients["wecom"], RobotKeys({"wrBrand": key}))
        await lose(rig, clock, "amy", "小张")
        [robot] = rig.state.calls_to("webhook/send")
        assert robot.body == {"msgtype": "text", "text": {"content": "客户「小张」删除了你（渠道：pkgcard）"}}
        assert alerts_to(rig, "amy") == ["客户「小张」删除了你（渠道：pkgcard）"]
    finally:
        await rig.close()


def test_a_wrong_rule_is_reported_by_file_and_key(tmp_path: Path) -> None:
    bad = '[loss_alerts]\nvia = ["fax", "robot"]\nquiet_hours = "25:00-08:00"\ntext = "客户 {nickname}"\n'
    content = content_with_alerts(tmp_path, bad)
    with pytest.raises(ContentError) as raised:
        load_content(content)
    problems = {(Path(p.file).name, p.key) for p in raised.value.problems}
    assert {("staff.toml", "loss_alerts.via"), ("staff.toml", "loss_alerts.robot_chat_id"),
            ("staff.toml", "loss_alerts.quiet_hours"), ("staff.toml", "loss_alerts.text")} <= problems  # fmt: skip
