"""The platform acted but its answer was lost (connection reset / no answer before the client's timeout).

For ``send_welcome_msg`` a repeat is safe — the code is single-use, a repeat answers 41051, which means
"already delivered" — so the bot may retry and must record the welcome as delivered. For the APIs that
deliver again on every call (``message/custom/send``, ``message/send``, ``kf/send_msg``,
``externalcontact/add_msg_template``) the bot must never re-send blindly: the simulator's record shows one
delivery, and the outbox row ends ``sent`` (reconciled with the platform) or ``uncertain``.

In-process (the real app and the simulator over loopback, ``bot.rig.Rig``) on a frozen clock: time is
moved past any retry the outbox could schedule, well inside every deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.db.models import OutboxCall
from bot.rig import Rig
from bot.simulator.faults import LostMode
from handlers.growth.stats import welcome_outcome
from handlers.growth.tables import Welcome
from handlers.sop.content.model import Delivery, Targets
from handlers.sop.drip_worker import DripWorker
from handlers.sop.group_sop import GroupSop
from handlers.sop.group_sop_robots import RobotCaller, RobotKeys
from tests.sop.drips import MORNING, at, hours, pay, steps_of, tick, worker_for
from tests.sop.group_posts import OWNERS, TEN_AM_SHANGHAI, daily_post, seed_groups, use_content
from tests.support.apps import drain, start_rig
from tests.support.settings import make_settings

pytestmark = pytest.mark.faults

WELCOME = "externalcontact/send_welcome_msg"
KFID = "wkSimKf0000000000000000000000001"
NOT_RESENT = {"sent", "uncertain"}  # reconciled with the platform, or known to be unknowable


@pytest.fixture
async def rig(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    clock.set(MORNING)
    rig = await start_rig(make_settings(sqlite_url), clock, rng=7)
    yield rig
    await rig.close()


@pytest.fixture
def worker(rig: Rig) -> DripWorker:
    return worker_for(rig)


async def outbox_rows(rig: Rig, api: str) -> list[OutboxCall]:
    async with rig.services.sessions() as s:
        return list((await s.scalars(select(OutboxCall).where(OutboxCall.api == api).order_by(OutboxCall.id))).all())


async def let_retries_run(rig: Rig, worker: DripWorker, clock: FrozenClock, *, step: float, times: int) -> None:
    """Advance the frozen clock ``times`` × ``step`` seconds, running whatever falls due each time."""
    for _ in range(times):
        clock.advance(timedelta(seconds=step))
        await tick(rig, worker)


def successful(rig: Rig, api: str) -> int:
    return sum(1 for c in rig.state.calls_to(api) if c.errcode == 0)


@pytest.mark.parametrize("mode", ["reset", pytest.param("timeout", marks=pytest.mark.slow)])
async def test_welcome_answer_lost_retry_answers_41051_and_the_welcome_counts_as_delivered(
    rig: Rig, worker: DripWorker, clock: FrozenClock, mode: LostMode
) -> None:
    # timeout: held past the client's fixed 10-s timeout (bot/platform/base.py), so this case takes ~11 s
    rig.state.faults.lose_answer(WELCOME, mode=mode, delay=10.5)
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await tick(rig, worker)
    await let_retries_run(rig, worker, clock, step=3, times=5)  # 15 s: inside the code's 20 s
    assert rig.state.faults.lost == [(WELCOME, mode)]
    assert len(rig.state.contacts[added.external_userid].welcomes) == 1
    assert successful(rig, WELCOME) == 1
    async with rig.services.sessions() as s:
        [welcome] = (await s.scalars(select(Welcome))).all()
        call = await s.get(OutboxCall, welcome.outbox_id)
    assert call is not None
    assert welcome_outcome(welcome, call.state) == "delivered", (call.state, call.last_error)


async def test_oa_drip_custom_message_answer_lost_is_not_sent_twice(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    """``message/custom/send`` (the OA follow drip's first step, inside the follow's 1-minute window)."""
    rig.state.faults.lose_answer("message/custom/send")
    followed = await rig.sim.follow(scene="poster_618")
    await tick(rig, worker)
    await let_retries_run(rig, worker, clock, step=5, times=8)  # 40 s: the window is still open
    assert rig.state.faults.lost == [("message/custom/send", "reset")]
    sent = [d for d in rig.state.delivered if d.api == "message/custom/send" and d.to == followed.openid]
    assert len(sent) == 1, [d.body for d in sent]
    [row] = await outbox_rows(rig, "message/custom/send")
    assert row.state in NOT_RESENT, (row.state, row.last_error)


@pytest.mark.parametrize("mode", ["reset", pytest.param("timeout", marks=pytest.mark.slow)])
async def test_app_message_to_staff_answer_lost_is_not_sent_twice(
    rig: Rig, worker: DripWorker, clock: FrozenClock, mode: LostMode
) -> None:
    """``message/send`` (the first-order care drip: an app message to the customer's staff member); with
    ``timeout`` the answer is held past the client's 10-s timeout (the case takes ~11 s)."""
    added = await rig.sim.add_friend("lulu", state="pkgcard", name="王小米")
    await tick(rig, worker)
    await pay(rig, "SO-3001", external_userid=added.external_userid)
    [care] = await steps_of(rig, "first_order_care")
    rig.state.faults.lose_answer("message/send", mode=mode, delay=10.5)
    await at(rig, worker, clock, care.due_at)
    await let_retries_run(rig, worker, clock, step=30, times=10)  # 5 minutes of retries
    assert rig.state.faults.lost == [("message/send", mode)]
    sent = [d for d in rig.state.delivered if d.api == "message/send" and d.to == "lulu"]
    assert len(sent) == 1, [d.body for d in sent]
    [row] = await outbox_rows(rig, "message/send")
    assert row.state in NOT_RESENT, (row.state, row.last_error)


async def test_group_send_task_answer_lost_is_not_created_twice(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    """``externalcontact/add_msg_template`` (the package-card drip's next-day group-send task)."""
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await tick(rig, worker)
    rig.state.faults.lose_answer("externalcontact/add_msg_template")
    await at(rig, worker, clock, MORNING + hours(25))
    await let_retries_run(rig, worker, clock, step=30, times=10)
    assert rig.state.faults.lost == [("externalcontact/add_msg_template", "reset")]
    tasks = [t for t in rig.state.msg_templates.values() if added.external_userid in t.body.get("external_userid", [])]
    assert len(tasks) == 1, f"{len(tasks)} group-send tasks for one drip step"
    assert successful(rig, "externalcontact/add_msg_template") == 1
    [row] = await outbox_rows(rig, "externalcontact/add_msg_template")
    assert row.state in NOT_RESENT, (row.state, row.last_error)


async def test_kf_reply_answer_lost_is_not_sent_twice(rig: Rig, worker: DripWorker, clock: FrozenClock) -> None:
    """``kf/send_msg`` (a keyword reply to a 微信客服 customer)."""
    rig.state.faults.lose_answer("kf/send_msg")
    assert (await rig.sim.kf_customer_writes(KFID, "wmKfCustomer1", "签到")).ok
    await tick(rig, worker)
    await let_retries_run(rig, worker, clock, step=5, times=8)
    assert rig.state.faults.lost == [("kf/send_msg", "reset")]
    sent = [d for d in rig.state.delivered if d.api == "kf/send_msg"]
    assert len(sent) == 1, [d.body for d in sent]
    [row] = await outbox_rows(rig, "kf/send_msg")
    assert row.state in NOT_RESENT, (row.state, row.last_error)


@pytest.fixture
async def group_rig(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    clock.set(TEN_AM_SHANGHAI)
    rig = await start_rig(make_settings(sqlite_url), clock, rng=7, workers=False)  # the test fires the post itself
    yield rig
    await rig.close()


async def test_group_post_task_answer_lost_is_not_created_twice(group_rig: Rig, clock: FrozenClock) -> None:
    """``externalcontact/add_msg_template`` for a group post (one task per owner; a reconciler exists)."""
    rig = group_rig
    await seed_groups(rig, clock, owners=OWNERS[:1])
    use_content(rig.services, daily_post())
    rig.state.faults.lose_answer("externalcontact/add_msg_template")
    await GroupSop(rig.services).fire("daily_tip", TEN_AM_SHANGHAI)
    await drain(rig, clock, horizon=timedelta(minutes=10), rounds=100)
    assert rig.state.faults.lost == [("externalcontact/add_msg_template", "reset")]
    assert successful(rig, "externalcontact/add_msg_template") == 1, "the owner got the same task twice"
    [row] = await outbox_rows(rig, "externalcontact/add_msg_template")
    assert row.state in NOT_RESENT, (row.state, row.last_error)


async def test_group_robot_post_answer_lost_is_not_posted_twice(group_rig: Rig, clock: FrozenClock) -> None:
    """A group robot webhook post (``webhook/send``): every call posts into the group again."""
    rig = group_rig
    groups = await seed_groups(rig, clock, owners=OWNERS[:1])
    chat = groups[OWNERS[0]][0]
    key = rig.state.add_robot(chat)
    rig.services.clients["robot"] = RobotCaller(rig.services.clients["wecom"], RobotKeys({chat: key}))
    use_content(rig.services, daily_post(delivery=Delivery.GROUP_ROBOT, targets=Targets(owners=(OWNERS[0],))))
    rig.state.faults.lose_answer("webhook/send")
    await GroupSop(rig.services).fire("daily_tip", TEN_AM_SHANGHAI)
    await drain(rig, clock, horizon=timedelta(minutes=10), rounds=100)
    assert rig.state.faults.lost == [("webhook/send", "reset")]
    posts = [d for d in rig.state.delivered if d.api == "webhook/send" and d.to == chat]
    assert len(posts) == 1, f"{len(posts)} robot posts in one group for one fire"
    [row] = await outbox_rows(rig, "webhook/send")
    assert row.state in NOT_RESENT, (row.state, row.last_error)
