"""A drip's ``0m`` step goes out at once: the dispatcher wakes the app's own drip worker after committing the
enrolment, instead of leaving the step to the next poll (every 5 s of wall-clock time on a frozen clock).

Nothing is driven by hand here: no tick, no ``run_due``, no drain, no clock change. The follow goes through
the app's real callback endpoint; the test only watches what the simulated platform receives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.rig import Rig
from handlers.sop.drip_worker import DRIP_WORKER
from tests.sop.drips import MORNING, drip_sends, steps_of
from tests.support.apps import start_rig

WITHIN_SECONDS = 1.0


@pytest.fixture
async def live_rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    """The app as it runs: its drip worker started and left alone (its poll is 5 s of wall-clock time)."""
    clock.set(MORNING)
    rig = await start_rig(settings, clock, rng=7)
    yield rig
    await rig.close()


async def first_drip_send(rig: Rig, openid: str, started: float, limit: float) -> float | None:
    """Seconds from ``started`` until the simulator recorded the drip's first message, None after ``limit``."""
    while (elapsed := time.monotonic() - started) < limit:
        if drip_sends(rig, openid):
            return elapsed
        await asyncio.sleep(0.01)
    return None


async def test_a_0m_step_reaches_the_follower_within_a_second_of_the_follow(live_rig: Rig, clock: FrozenClock) -> None:
    rig = live_rig
    assert rig.services.parts[DRIP_WORKER].poll_seconds >= 5.0  # the poll alone would be late
    started = time.monotonic()
    followed = await rig.sim.follow(scene="poster_618")  # returns once the bot answered the callback
    elapsed = await first_drip_send(rig, followed.openid, started, WITHIN_SECONDS)
    assert elapsed is not None, f"the 0m step did not reach the simulator within {WITHIN_SECONDS} s"
    [(at, text)] = drip_sends(rig, followed.openid)
    assert at == MORNING and "新人礼包" in text  # sent at the trigger time (the clock never moved)
    assert clock.now() == MORNING
    for _ in range(100):  # the step row commits with the outbox row; wait for nothing else to change
        steps = await steps_of(rig, "mp_48h")
        if steps[0].state == "sent":
            break
        await asyncio.sleep(0.01)
    assert [(s.step_id, s.state) for s in steps] == [("1", "sent"), ("2", "pending"), ("3", "pending")]
    assert all(c.errcode == 0 for c in rig.state.calls_to("message/custom/send"))
