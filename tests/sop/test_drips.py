"""The drip engine through the simulator: follow → message now → +3 h → +6 h, stopped by an order.

Frozen clock, real app and database (SQLite and PostgreSQL), the drip worker run by hand with
``run_due``; assertions are on what the simulated platform delivered.
"""

from __future__ import annotations

from bot.clock import FrozenClock
from bot.db.models import OutboxCall
from bot.rig import Rig
from handlers.sop.drip_worker import DripWorker
from tests.sop.drips import (  # noqa: F401  (the fixtures "rig" and "worker")
    MINUTE,
    MORNING,
    at,
    customer_by,
    drip_rig,
    drip_sends,
    drip_worker,
    enrolments,
    hours,
    ledger,
    pay,
    steps_of,
    tick,
    worker_for,
)
from tests.support.apps import rows


async def test_follow_drip_sends_now_and_at_3h_and_stops_at_the_order(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    t0 = clock.now()
    followed = await rig.sim.follow(scene="poster_618")
    assert followed.delivery.reply and "Content" in followed.delivery.reply  # the welcome is the passive reply
    openid = followed.openid
    await tick(rig, worker)  # step 1 ("0m") inside the follow's 1-minute window
    clock.set(t0 + 10 * MINUTE)
    await rig.sim.send_text(openid, "坚果怎么卖？")  # opens 5 sends / 48 h; not a stop for this drip
    await tick(rig, worker)
    await at(rig, worker, clock, t0 + hours(3))
    await at(rig, worker, clock, t0 + hours(4))
    await pay(rig, "SO-1001", openid=openid)
    await at(rig, worker, clock, t0 + hours(6))
    await at(rig, worker, clock, t0 + hours(30))

    sent = drip_sends(rig, openid)
    assert [when for when, _ in sent] == [t0, t0 + hours(3)]
    assert "新人礼包" in sent[0][1] and "山野每日坚果" in sent[1][1]
    assert all(c.errcode == 0 for c in rig.state.calls_to("message/custom/send"))  # never a 45015
    steps = await steps_of(rig, "mp_48h")
    assert [(s.step_id, s.state) for s in steps] == [("1", "sent"), ("2", "sent"), ("3", "cancelled")]
    assert steps[2].reason == "drip stopped: purchased"
    [enrolment] = await enrolments(rig, "mp_48h")
    assert (enrolment.state, enrolment.stop_reason) == ("stopped", "purchased")
    customer = await customer_by(rig, "openid", openid)
    assert [(r.source, r.outcome) for r in await ledger(rig, customer.id)] == [
        ("drip:mp_48h/1", "sent"),
        ("drip:mp_48h/2", "sent"),
    ]


async def test_without_a_window_the_step_waits_then_is_skipped_never_sent_to_fail(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    t0 = clock.now()
    openid = (await rig.sim.follow(scene="poster_618")).openid
    await tick(rig, worker)
    await at(rig, worker, clock, t0 + hours(3))
    [_, waiting, _] = await steps_of(rig, "mp_48h")
    assert waiting.state == "pending" and "outside the customer-service window" in (waiting.reason or "")
    for minutes in range(5, 35, 5):  # the poll re-checks while the step may still go out
        await at(rig, worker, clock, t0 + hours(3) + minutes * MINUTE)
    [_, skipped, _] = await steps_of(rig, "mp_48h")
    assert (skipped.state, skipped.reason) == ("skipped", "outside the customer-service window")
    assert len(drip_sends(rig, openid)) == 1
    assert [c.errcode for c in rig.state.calls_to("message/custom/send")] == [0]


async def test_a_step_run_more_than_missed_after_late_is_missed_not_sent(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    openid = (await rig.sim.follow(scene="poster_618")).openid
    await rig.drain()  # the worker was down: nobody ran the step
    clock.advance(hours(1))
    await tick(rig, worker)
    [missed, *_] = await steps_of(rig, "mp_48h")
    assert missed.state == "missed" and "missed" in (missed.reason or "")
    assert drip_sends(rig, openid) == []
    customer = await customer_by(rig, "openid", openid)
    [row] = await ledger(rig, customer.id)
    assert (row.outcome, row.source) == ("skipped", "drip:mp_48h/1") and "missed" in (row.reason or "")


async def test_quiet_hours_defer_to_the_morning_with_the_reason(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    clock.set(MORNING + hours(14))  # 23:00 in Shanghai
    openid = (await rig.sim.follow(scene="poster_618")).openid
    await tick(rig, worker)
    assert drip_sends(rig, openid) == []
    [first, *_] = await steps_of(rig, "mp_48h")
    assert first.state == "pending" and first.due_at == MORNING + hours(23)  # 08:00 next day, local
    assert first.reason == "deferred: quiet hours 22:00-08:00"
    customer = await customer_by(rig, "openid", openid)
    [row] = await ledger(rig, customer.id)
    assert row.outcome == "deferred" and (row.reason or "").startswith("quiet hours 22:00-08:00")


async def test_a_duplicate_trigger_does_not_enrol_twice(rig: Rig, worker: DripWorker, clock: FrozenClock) -> None:
    openid = (await rig.sim.follow(scene="poster_618")).openid
    await tick(rig, worker)
    clock.advance(MINUTE * 5)
    await rig.sim.unfollow(openid)
    clock.advance(MINUTE * 5)
    await rig.sim.follow(openid, scene="poster_618")
    await tick(rig, worker)
    [enrolment] = await enrolments(rig, "mp_48h")
    assert (enrolment.state, enrolment.stop_reason) == ("stopped", "unfollowed")
    assert [s.state for s in await steps_of(rig, "mp_48h")] == ["sent", "cancelled", "cancelled"]
    assert len(drip_sends(rig, openid)) == 1


async def test_two_workers_never_send_a_step_twice(rig: Rig, clock: FrozenClock) -> None:
    import asyncio

    followers = [(await rig.sim.follow(scene="poster_618")).openid for _ in range(24)]
    await rig.drain()
    one, two = worker_for(rig), worker_for(rig)
    while sum(await asyncio.gather(one.run_due(limit=5), two.run_due(limit=5))):
        pass
    await rig.drain()
    keys = [c.idempotency_key for c in await rows(rig, OutboxCall, OutboxCall.api == "message/custom/send")]
    assert len(keys) == len(set(keys)) == 24
    assert all(len(drip_sends(rig, openid)) == 1 for openid in followers)
    assert [s.state for s in await steps_of(rig, "mp_48h") if s.step_id == "1"] == ["sent"] * 24
