"""Wiring of scheduled group posts into the app: scheduler jobs and the robot client.

The app owns the resources; the SOP feature (handlers/sop/feature.py) registers these.
"""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.outbox import PlatformCaller
from bot.scheduler import Scheduler
from bot.services import Services
from handlers.sop.content import sop_of
from handlers.sop.group_sop import GroupSop
from handlers.sop.group_sop_results import check_group_tasks
from handlers.sop.group_sop_robots import RobotCaller, load_robot_keys

CATCH_UP_SECONDS = 60.0  # the safety net behind the cron jobs; also runs once right after start-up
CHECK_SECONDS = 300.0  # how often due confirmation checks of group-send tasks are looked for

__all__ = ["install_group_sop", "robot_client", "robot_keys_path"]


def robot_keys_path(settings: Settings) -> Path:
    """``group_robots.toml`` beside the SQLite file, or in ``var/`` (a secret: never under content/)."""
    url = settings.database.url.get()
    if url.startswith("sqlite") and ":///" in url:
        return Path(url.split(":///", 1)[1]).parent / "group_robots.toml"
    return Path("var/group_robots.toml")


def robot_client(wecom: PlatformCaller, path: Path) -> RobotCaller:
    return RobotCaller(wecom, load_robot_keys(path))


def install_group_sop(scheduler: Scheduler, services: Services) -> GroupSop:
    """(Re)build the group-post jobs from the content in force; call again after a content reload."""
    engine = GroupSop(services)
    sop = sop_of(services.content)
    scheduler.schedule_posts(sop.group_posts, engine.fire, grace=sop.budget.missed_after)

    async def check() -> int:
        return await check_group_tasks(services)

    scheduler.every("group_sop.catch_up", CATCH_UP_SECONDS, engine.catch_up)
    scheduler.every("group_sop.check", CHECK_SECONDS, check)
    return engine
