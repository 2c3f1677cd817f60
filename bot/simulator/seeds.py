"""An account that existed before siyu-bot: customers, groups and followers already on the platform.

Seeded straight into the simulator's state (no callback: they happened before the bot was there), with
times in the past. ``siyu-bot demo`` imports it before its first chapter; ``python -m bot.simulator
--existing-account`` starts with it, for a rehearsal (README, "Rehearse before going live").
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.simulator.models import GroupMember
from bot.simulator.state import SimState

DAY = 86_400
# (staff, state of the 联系我 code they came through, how many): known channel codes and none at all
CUSTOMERS = (("lulu", "pkgcard", 6), ("sh01_wangjie", "store_sh01", 4), ("lulu", None, 2))
GROUPS = (("lulu", "山野小食福利群1", 4), ("lulu", "山野小食福利群2", 3), ("sh01_wangjie", "山野小食会员群1", 3))
FOLLOWERS = (("poster_618", 4), (None, 3))  # QR scene (a known channel) or none (search)


@dataclass(frozen=True, slots=True)
class ExistingAccount:
    customers: list[str]
    groups: dict[str, str]  # chat_id → name
    followers: list[str]


def seed_existing_account(state: SimState, *, age_days: int = 90) -> ExistingAccount:
    """Customers (a corp tag on some), customer groups with some of them as members, OA followers."""
    since = state.ts() - age_days * DAY
    gold = state.add_corp_tag("会员等级", "金卡")
    customers: list[str] = []
    for staff, code, count in CUSTOMERS:
        for _ in range(count):
            n = len(customers)
            contact = state.add_contact(staff, state=code, name=f"老客{n + 1:02d}")
            contact.follow[staff].createtime = since + n * DAY
            if n % 3 == 0:
                contact.follow[staff].tag_ids.append(gold.id)
            customers.append(contact.external_userid)
    groups: dict[str, str] = {}
    for i, (owner, name, size) in enumerate(GROUPS):
        group = state.add_group(owner, name)
        group.create_time = since + i * DAY
        for ext in customers[i : i + size]:
            group.members[ext] = GroupMember(ext, 2, since + (i + 1) * DAY, 3, invitor=owner, state="group_fans")
        state.bump_member_version(group)
        groups[group.chat_id] = name
    followers: list[str] = []
    for scene, count in FOLLOWERS:
        for _ in range(count):
            follower = state.add_follower()
            follower.subscribe_time = since + len(followers) * DAY
            if scene is not None:
                follower.subscribe_scene, follower.qr_scene_str = "ADD_SCENE_QR_CODE", scene
            followers.append(follower.openid)
    return ExistingAccount(customers, groups, followers)
