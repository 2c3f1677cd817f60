"""`siyu-bot sop preview` and `siyu-bot sop status` on a database the SOP engine really wrote to
(frozen clock, simulator, SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer
from bot.rig import Rig
from handlers.growth.tables import GroupChat
from handlers.sop.drip_worker import DRIP_WORKER
from handlers.sop.group_sop import GroupSop
from handlers.sop.reports import CSV_HEADER, print_preview, read_only_session
from handlers.sop.status import print_status, reason_kind
from handlers.sop.tables import ContactLedger, GroupFire
from tests.sop.drips import MORNING, at, hours, steps_of, tick, worker_for
from tests.support.apps import rows, start_rig

EVENING = MORNING + hours(11)  # Monday 2026-11-23 20:00 in Asia/Shanghai
GROUP = "wrlulu0001".ljust(30, "A")


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    clock.set(EVENING)
    rig = await start_rig(settings, clock, rng=7)
    # the tests run the steps by hand; woken by enrolments the worker would race them
    await rig.services.parts[DRIP_WORKER].stop()
    yield rig
    await rig.close()


async def add_rows(rig: Rig, *objects: object) -> None:
    async with rig.services.sessions() as s, s.begin():
        s.add_all(objects)


def quota_spent(n: int, start: datetime, delivery: str, **subject: object) -> list[ContactLedger]:
    """``n`` group-send messages already received this month: the platform's monthly quota (30 in November)."""
    return [
        ContactLedger(
            at=start + timedelta(minutes=i),
            category="care",
            delivery=delivery,
            source="post:earlier",
            outcome="sent",
            reason=None,
            **subject,
        )
        for i in range(n)
    ]


async def ledger_count(rig: Rig) -> int:
    async with rig.services.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(ContactLedger)) or 0)


async def test_preview_shows_due_times_and_what_the_budget_stops(
    rig: Rig, clock: FrozenClock, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = worker_for(rig)
    await rig.sim.follow(scene="poster_618")  # 20:00: step 1 now, step 2 at 23:00, step 3 at 02:00
    await tick(rig, worker)
    await add_rows(
        rig, GroupChat(chat_id=GROUP, name="山野小食福利群1", owner="lulu", updated_at=clock.now()),
        *quota_spent(30, datetime(2026, 11, 1, tzinfo=settings.tz), "wecom_task_group", chat_id=GROUP),
    )  # fmt: skip
    before = await ledger_count(rig)

    assert await print_preview(settings, 7, False, now=clock.now() + timedelta(minutes=5)) == 0
    text = capsys.readouterr().out
    [step2] = [line for line in text.splitlines() if "mp_48h/2" in line]
    assert step2.startswith("11-23 23:00") and "mp_custom" in step2 and "marketing" in step2
    assert "defer → 11-24 08:00: quiet hours 22:00-08:00" in step2
    [snack] = [line for line in text.splitlines() if "tue_snack_tips" in line]  # Tuesday 15:00, group-send task
    assert snack.startswith("11-24 15:00") and "owner:lulu (1 groups)" in snack
    assert "skip 1: group-send quota reached (30 per days_in_month)" in snack
    [vote] = [line for line in text.splitlines() if "tue_taste_vote" in line]  # an app message to the owner
    assert "send 1" in vote
    assert "stopped by reason:" in text and "quiet hours 22:00-08:00" in text.split("stopped by reason:")[1]
    assert "2026-11-24 Tue" in text
    assert await ledger_count(rig) == before  # a preview never writes

    assert await print_preview(settings, 7, True, now=clock.now() + timedelta(minutes=5)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join(CSV_HEADER)
    assert any(line.startswith("2026-11-23 23:00,drip,") and ",defer,2026-11-24 08:00," in line for line in lines)


async def test_preview_session_cannot_write(settings: Settings) -> None:
    async with read_only_session(settings) as session:
        with pytest.raises(DBAPIError):
            await session.execute(insert(GroupChat).values(chat_id="x", name="x", updated_at=MORNING))


async def test_status_shows_reasons_for_deferred_skipped_and_missed(
    rig: Rig, clock: FrozenClock, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = worker_for(rig)
    await rig.sim.follow(scene="poster_618")
    await rig.sim.add_friend("lulu", state="pkgcard", name="包裹卡客户")  # its next-day 10:00 group-send task
    await tick(rig, worker)
    [pkg] = await rows(rig, Customer, Customer.first_channel == "pkgcard")
    await add_rows(rig, *quota_spent(30, datetime(2026, 11, 1, tzinfo=settings.tz), "wecom_task_single",
                                     customer_id=pkg.id))  # fmt: skip
    await at(rig, worker, clock, EVENING + hours(3))  # 23:00: the follower's step 2 is deferred to 08:00

    assert await print_status(settings, now=clock.now()) == 0
    text = capsys.readouterr().out
    assert "mp_48h" in text and "deferred 1" in text
    assert "deferred    deferred: quiet hours 22:00-08:00" in text  # the step's reason, counted

    await at(rig, worker, clock, MORNING + hours(25))  # Tuesday 10:00: the package-card customer's step
    [gift, _] = [s for s in await steps_of(rig, "pkgcard_followup")]
    assert (gift.state, gift.reason) == ("skipped", "group-send quota reached: 30/30 (days_in_month)")
    assert await GroupSop(rig.services).fire("tue_snack_tips", clock.now() - hours(2)) == "missed"
    [marker] = await rows(rig, GroupFire, GroupFire.state == "missed")

    assert await print_status(settings, latest=5, now=clock.now()) == 0
    text = capsys.readouterr().out
    assert "skipped     group-send quota reached: 30/30 (days_in_month)" in text
    assert "pkgcard_followup/gift" in text
    assert "Group fires: missed 1" in text and "missed      … late; missed_after is 0:30:00" in text
    assert "tue_snack_tips" in text and "(the whole fire)" in text and (marker.reason or "") in text
    assert "SOP platform calls failed/expired/uncertain (answer lost, not re-sent): none" in text
    ledger = text.split("Contact ledger, last 7 days:")[1]
    assert "deferred    quiet hours 22:00-08:00" in ledger and "skipped     group-send quota reached" in ledger


def test_reasons_are_grouped_without_their_measurements() -> None:
    assert reason_kind("quiet hours 22:00-08:00; until 2026-11-24T00:00:00+00:00") == "quiet hours 22:00-08:00"
    assert reason_kind("missed: due 2:00:00 ago, more than 0:30:00") == "missed: due … ago, more than 0:30:00"
    assert reason_kind("1 day, 2:00:00 late; missed_after is 0:30:00") == "… late; missed_after is 0:30:00"
    assert reason_kind(None) == "-"


def test_sop_commands_through_the_cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from handlers import main
    from handlers.sop import commands

    monkeypatch.setattr(commands, "migrated_settings_of", lambda _args: settings)
    assert main(["sop", "status", "--latest", "3"]) == 0
    assert "(no enrolments)" in capsys.readouterr().out
    assert main(["sop", "preview", "--days", "2", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == ",".join(CSV_HEADER)
