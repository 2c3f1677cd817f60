"""Channel stats match simulated journeys exactly: adds, unique, losses, net, welcomes, A/B, 7-day retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.rig import Rig
from handlers.growth.stats import UNATTRIBUTED, as_rows, channel_stats, render_csv, render_table
from tests.growth.helpers import sync_content
from tests.support.apps import start_rig


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=3)
    await sync_content(rig, clock)
    yield rig
    await rig.close()


async def test_stats_match_the_journeys(rig: Rig, clock: FrozenClock) -> None:
    sim = rig.sim
    start = clock.now()
    stays = await sim.add_friend("lulu", state="pkgcard")
    leaves_early = await sim.add_friend("lulu", state="pkgcard")
    leaves_late = await sim.add_friend("axin", state="pkgcard")
    await sim.add_friend("lulu", state="live_0611")
    await sim.add_friend("lulu", state="no-such-code")
    fan_stays = await sim.follow(scene="poster_618")
    fan_leaves = await sim.follow(scene="poster_618")
    await sim.scan(fan_stays.openid, "poster_618")  # a touch, not an add
    await rig.drain()

    clock.advance(timedelta(days=2))
    await sim.delete_friend_by_customer("lulu", leaves_early.external_userid)
    await sim.unfollow(fan_leaves.openid)
    await rig.drain()
    clock.advance(timedelta(days=6))  # day 8: outside the 7-day window of the first adds
    await sim.delete_customer_by_staff("axin", leaves_late.external_userid)
    await rig.drain()
    clock.advance(timedelta(days=2))

    async with rig.services.sessions() as session:
        stats = await channel_stats(session, clock.now())
        assert stays.external_userid
        pkg, live, poster, unattributed = (stats[k] for k in ("pkgcard", "live_0611", "mp_poster_618", UNATTRIBUTED))
        assert (pkg.adds, pkg.unique, pkg.losses, pkg.net) == (3, 3, 2, 1)
        assert (pkg.eligible_7d, pkg.retained_7d) == (3, 2)  # the day-8 loss is outside the 7 days
        assert pkg.welcomes["delivered"] == 3 and sum(pkg.variants.values()) == 3
        assert set(pkg.variants) <= {"welcome_pkgcard/a", "welcome_pkgcard/b"}
        assert (live.adds, live.losses, live.retention_7d) == (1, 0, 1.0)
        assert (poster.adds, poster.unique, poster.losses, poster.net) == (2, 2, 1, 1)
        assert poster.retention_7d == 0.5 and poster.welcomes["delivered"] == 3  # 2 follows + 1 scan, passive replies
        assert (unattributed.adds, unattributed.welcomes["delivered"]) == (1, 1)

        # --since excludes what happened before it (adds and losses alike)
        later = await channel_stats(session, clock.now(), since=start + timedelta(days=1))
        assert later["pkgcard"].adds == 0 and later["pkgcard"].losses == 2

    rows = as_rows(stats, {"pkgcard": "包裹卡"})
    assert rows[-1][0] == UNATTRIBUTED
    assert "包裹卡" in render_table(rows)
    assert render_csv(rows).splitlines()[0].startswith("channel,name,adds,unique,losses,net")


def test_stats_cli_prints_csv(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from handlers import main

    env = {"SIYU_DATABASE_URL": sqlite_url}
    os.environ.update(env)
    try:
        assert main(["stats", "channels", "--csv"]) == 0
    finally:
        for key in env:
            os.environ.pop(key, None)
    assert capsys.readouterr().out.startswith("channel,name,adds,unique,losses,net")
