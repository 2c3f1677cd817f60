"""Content reload in a running server: a valid directory replaces the content and the group-post jobs;
a broken one changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.clock import FrozenClock
from bot.config import Settings
from handlers.growth.content import channels_of
from tests.support.apps import start_rig
from tests.support.settings import SHIPPED_CONTENT, make_settings


async def test_reload_swaps_valid_content_and_keeps_the_old_on_a_broken_file(
    db_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    content_dir = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, content_dir)
    settings: Settings = make_settings(db_url, content_dir=str(content_dir))
    rig = await start_rig(settings, clock, rng=1)
    try:
        services = rig.services
        assert services.reloader is not None and services.scheduler is not None
        before = services.content
        jobs_before = [j for j in services.scheduler.job_ids if j.startswith("post")]
        assert jobs_before

        channels = content_dir / "channels.toml"
        channels.write_text(channels.read_text(encoding="utf-8").replace('name = "包裹卡"', 'name = "包裹卡2"'))
        assert await services.reloader.reload() == []
        assert services.content is not before
        assert channels_of(services.content).channel("pkgcard") is not None
        assert channels_of(services.content).channel("pkgcard").name == "包裹卡2"  # type: ignore[union-attr]

        group_sop = content_dir / "group_sop.toml"
        group_sop.write_text(group_sop.read_text(encoding="utf-8").replace('cron = "0 10 * * 1"', 'cron = "0 10 * *"'))
        good = services.content
        problems = await services.reloader.reload()
        assert problems and any("group_sop.toml" in p for p in problems)
        assert services.content is good  # nothing half-applied
        assert [j for j in services.scheduler.job_ids if j.startswith("post")] == jobs_before
    finally:
        await rig.close()
