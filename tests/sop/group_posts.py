"""Helpers for the group-post tests: 300 known groups across 6 owners on the rig (``tests.support.apps.start_rig``),
posts swapped in."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from bot.clock import FrozenClock
from bot.content.schedule import CronSchedule
from bot.rig import Rig
from bot.services import Services
from handlers.growth.tables import GroupChat
from handlers.sop.content.model import Budget, Category, Delivery, GroupPost, Targets

OWNERS = ("lulu", "axin", "mumu", "dada", "xixi", "bobo")
GROUPS_PER_OWNER = 50
TEN_AM_SHANGHAI = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 Asia/Shanghai


def daily_post(
    post_id: str = "daily_tip",
    cron: str = "0 10 * * *",
    delivery: Delivery = Delivery.WECOM_TASK_GROUP,
    category: Category = Category.CARE,
    targets: Targets | None = None,
) -> GroupPost:
    return GroupPost(
        id=post_id,
        name=None,
        schedule=CronSchedule(cron),
        targets=targets or Targets(tags=("群类型/福利群",)),
        delivery=delivery,
        category=category,
        message="group_snack_tips",
        enabled=True,
    )


def use_content(services: Services, *posts: GroupPost, budget: Budget | None = None) -> None:
    """Swap in the given posts (and budget) as the content in force."""
    sections = dict(services.content.sections)
    sections["group_posts"] = tuple(posts)
    if budget is not None:
        sections["budget"] = (budget,)
    services.content = dataclasses.replace(services.content, sections=sections)


def chat_id(owner: str, n: int) -> str:
    return f"wr{owner}{n:04d}".ljust(30, "A")


async def seed_groups(rig: Rig, clock: FrozenClock, owners: tuple[str, ...] = OWNERS) -> dict[str, list[str]]:
    """300 groups the bot knows (``group_chats``) and the simulated corp has, 50 per owner."""
    out: dict[str, list[str]] = {}
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s, s.begin():
        for owner in owners:
            for n in range(GROUPS_PER_OWNER):
                cid, name = chat_id(owner, n), f"山野小食福利群{owner}{n}"
                rig.state.add_group(owner, name=name, chat_id=cid)
                s.add(GroupChat(chat_id=cid, name=name, owner=owner, updated_at=clock.now()))
                out.setdefault(owner, []).append(cid)
    return out
