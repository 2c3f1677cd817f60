"""Scheduled group posts through the simulator: once per day per owner, across replicas and crashes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import web
from sqlalchemy import update

from bot.app import SERVICES
from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import OutboxCall
from bot.outbox import OutboxWorker, split_payload
from bot.rig import Rig
from handlers.sop.content.model import Budget, QuotaPolicy
from handlers.sop.group_sop import MARKER, GroupSop
from handlers.sop.group_sop_results import reconcilers
from handlers.sop.tables import ContactLedger, GroupFire
from tests.sop.group_posts import GROUPS_PER_OWNER, OWNERS, TEN_AM_SHANGHAI, daily_post, seed_groups, use_content
from tests.support.apps import build, drain, rows, start_rig

ADD = "externalcontact/add_msg_template"


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    clock.set(TEN_AM_SHANGHAI)
    rig = await start_rig(settings, clock, rng=7, workers=False)  # the tests fire the posts themselves
    use_content(rig.services, daily_post())
    yield rig
    await rig.close()


def task_calls(rig: Rig) -> list[dict[str, object]]:
    return [c.body or {} for c in rig.state.calls_to(ADD) if c.response.get("errcode") == 0]


async def test_a_daily_post_sends_one_task_per_owner_once_a_day(rig: Rig, clock: FrozenClock) -> None:
    groups = await seed_groups(rig, clock)
    sop = GroupSop(rig.services)
    assert await sop.catch_up() == [("daily_tip", TEN_AM_SHANGHAI)]
    await drain(rig, clock)
    bodies = task_calls(rig)
    assert len(bodies) == len(OWNERS)
    assert {b["sender"]: sorted(b["chat_id_list"]) for b in bodies} == groups  # type: ignore[misc,type-var]
    assert all(b["chat_type"] == "group" and b["text"] for b in bodies)

    assert await sop.fire("daily_tip", TEN_AM_SHANGHAI) == "already"
    clock.advance(timedelta(minutes=5))
    assert await sop.catch_up() == []
    await drain(rig, clock)
    assert len(task_calls(rig)) == len(OWNERS)
    fires = await rows(rig, GroupFire, GroupFire.target != MARKER)
    assert {f.state for f in fires} == {"sent"} and all(f.msgid for f in fires)
    sent = await rows(rig, ContactLedger, ContactLedger.outcome == "sent")
    assert len(sent) == len(OWNERS) * GROUPS_PER_OWNER

    clock.advance(timedelta(days=1) - timedelta(minutes=5))
    assert await sop.catch_up() == [("daily_tip", TEN_AM_SHANGHAI + timedelta(days=1))]
    await drain(rig, clock)
    assert len(task_calls(rig)) == 2 * len(OWNERS)


async def second_process(rig: Rig, clock: FrozenClock) -> web.AppRunner:
    """Another server process: its own app, engine and outbox on the same database and simulator (the
    rig's settings point at both)."""
    app = build(rig.services.settings, clock, workers=False)
    runner = web.AppRunner(app)
    await runner.setup()
    use_content(app[SERVICES], daily_post())
    return runner


async def test_two_processes_on_one_database_send_each_owner_task_once(rig: Rig, clock: FrozenClock) -> None:
    await seed_groups(rig, clock)
    other = await second_process(rig, clock)
    try:
        first, second = GroupSop(rig.services), GroupSop(other.app[SERVICES])
        outcomes = await asyncio.gather(
            first.fire("daily_tip", TEN_AM_SHANGHAI), second.fire("daily_tip", TEN_AM_SHANGHAI)
        )
        assert set(outcomes) <= {"done", "already"}
        await drain(rig, clock)
        other_outbox = other.app[SERVICES].outbox
        assert other_outbox is not None
        await other_outbox.settle()
        await drain(rig, clock)
    finally:
        await other.cleanup()
    assert Counter(b["sender"] for b in task_calls(rig)) == dict.fromkeys(OWNERS, 1)
    assert len(await rows(rig, OutboxCall, OutboxCall.api == ADD)) == len(OWNERS)


async def test_a_fan_out_killed_midway_finishes_after_restart_without_duplicates(
    rig: Rig, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_groups(rig, clock)
    real = GroupSop._fan_out
    done = 0

    async def dying(self: GroupSop, *args: object) -> None:
        nonlocal done
        if done == 3:
            raise SystemExit("killed mid fan-out")
        done += 1
        await real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(GroupSop, "_fan_out", dying)
    with pytest.raises(SystemExit):
        await GroupSop(rig.services).fire("daily_tip", TEN_AM_SHANGHAI)
    monkeypatch.setattr(GroupSop, "_fan_out", real)
    [marker] = await rows(rig, GroupFire, GroupFire.target == MARKER)
    assert marker.state == "firing"
    await drain(rig, clock)
    assert len(task_calls(rig)) == 3

    clock.advance(timedelta(minutes=2))  # restarted, still inside missed_after
    restarted = GroupSop(rig.services)
    assert await restarted.catch_up() == [("daily_tip", TEN_AM_SHANGHAI)]
    await drain(rig, clock)
    assert Counter(b["sender"] for b in task_calls(rig)) == dict.fromkeys(OWNERS, 1)
    [marker] = await rows(rig, GroupFire, GroupFire.target == MARKER)
    assert marker.state == "done"


async def test_an_interrupted_task_call_is_reconciled_not_blindly_resent(
    rig: Rig, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rows die in ``sending``: one after the platform created the task, one before it got the call."""
    await seed_groups(rig, clock)
    s = rig.services
    assert s.engine is not None and s.dispatcher is not None and s.outbox is not None
    worker = OutboxWorker(
        s.engine, s.clients, clock, s.settings.outbox, s.metrics, s.instances, reconcilers=reconcilers(s)
    )
    worker.result_sink = s.dispatcher.complete_call
    s.outbox = worker  # the restarted process's outbox, with the reconciler the app wires in
    monkeypatch.setattr(worker, "notify", lambda calls: None)
    await GroupSop(s).fire("daily_tip", TEN_AM_SHANGHAI)  # queued; the process dies before running them
    calls = sorted(await rows(rig, OutboxCall, OutboxCall.api == ADD), key=lambda c: c.id)
    reached, lost = calls[0], calls[1]
    assert s.sessions is not None
    async with s.sessions() as session, session.begin():
        await session.execute(
            update(OutboxCall)
            .where(OutboxCall.id.in_([reached.id, lost.id]))
            .values(state="sending", lease_until=clock.now() + timedelta(seconds=30), attempts=1)
        )
    body, _, _ = split_payload(reached.payload)
    created = await s.clients["wecom"].call(ADD, body)  # the platform acted, then the process died

    clock.advance(timedelta(seconds=31))
    await drain(rig, clock)
    assert Counter(b["sender"] for b in task_calls(rig)) == dict.fromkeys(OWNERS, 1)
    assert len(rig.state.calls_to("externalcontact/get_groupmsg_list_v2")) == 2
    fires = {f.outbox_id: f for f in await rows(rig, GroupFire, GroupFire.target != MARKER)}
    assert fires[reached.id].msgid == created["msgid"] and fires[reached.id].state == "sent"
    assert fires[lost.id].state == "sent" and fires[lost.id].msgid
    assert {c.state for c in await rows(rig, OutboxCall, OutboxCall.api == ADD)} == {"sent"}


async def test_quota_reached_skips_with_the_reason_in_the_ledger(rig: Rig, clock: FrozenClock) -> None:
    await seed_groups(rig, clock, owners=OWNERS[:2])
    budget = Budget(quiet_hours=None, group_send_quota=QuotaPolicy.ONE_PER_DAY)
    use_content(rig.services, daily_post(), daily_post("noon_tip", "0 12 * * *"), budget=budget)
    sop = GroupSop(rig.services)
    await sop.fire("daily_tip", TEN_AM_SHANGHAI)
    await drain(rig, clock)
    clock.advance(timedelta(hours=2))
    assert await sop.fire("noon_tip", clock.now()) == "done"
    await drain(rig, clock)
    assert len(task_calls(rig)) == 2
    noon = await rows(rig, GroupFire, GroupFire.post_id == "noon_tip", GroupFire.target != MARKER)
    assert {f.state for f in noon} == {"skipped"}
    assert all("group-send quota reached" in (f.reason or "") for f in noon)
    skipped = await rows(rig, ContactLedger, ContactLedger.outcome == "skipped")
    assert len(skipped) == 2 * GROUPS_PER_OWNER
    assert {r.source for r in skipped} == {"post:noon_tip"}


async def test_quiet_hours_skip_and_late_fires_are_missed(rig: Rig, clock: FrozenClock) -> None:
    await seed_groups(rig, clock, owners=OWNERS[:1])
    use_content(rig.services, daily_post("late_tip", "0 23 * * *"), daily_post())
    sop = GroupSop(rig.services)
    assert await sop.fire("daily_tip", TEN_AM_SHANGHAI) == "done"
    await drain(rig, clock)
    night = TEN_AM_SHANGHAI + timedelta(hours=13)
    clock.set(night)
    assert await sop.fire("late_tip", night) == "done"
    [fire] = await rows(rig, GroupFire, GroupFire.post_id == "late_tip", GroupFire.target != MARKER)
    assert fire.state == "skipped" and fire.reason == "quiet hours 22:00-08:00"

    clock.set(TEN_AM_SHANGHAI + timedelta(days=1, hours=2))  # the process was down at 10:00
    await sop.catch_up()
    markers = {m.fire_at: m for m in await rows(rig, GroupFire, GroupFire.post_id == "daily_tip")}
    assert markers[TEN_AM_SHANGHAI + timedelta(days=1)].state == "missed"
    await drain(rig, clock)
    assert len(task_calls(rig)) == 1  # only the first day's
