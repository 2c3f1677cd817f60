"""``apply(plan, target)``: perform a plan's writes in order (tags before the channels that use them,
then attachment media, then group welcome templates, whose bodies carry the uploaded media ids), and
``read_platform_state``: the tag reads that let a sync adopt tags instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.platform import JsonObject
from handlers.growth.sync import group_welcome, media, mp_steps, wecom_steps
from handlers.growth.sync.model import (
    CONTACT_WAY,
    CORP_TAG,
    CORP_TAG_GROUP,
    GROUP_WELCOME,
    JOIN_WAY,
    MEDIA,
    MP_QRCODE,
    MP_TAG,
    Action,
    Op,
    Plan,
    PlatformState,
)
from handlers.growth.sync.target import SyncResult, SyncTarget

Step = Callable[[Action, SyncTarget], Awaitable[None]]

STEPS: dict[tuple[str, Op], Step] = {
    (CONTACT_WAY, Op.CREATE): wecom_steps.create_contact_way,
    (CONTACT_WAY, Op.REPLACE): wecom_steps.create_contact_way,
    (CONTACT_WAY, Op.UPDATE): wecom_steps.update_contact_way,
    (CONTACT_WAY, Op.RESUME): wecom_steps.resume_contact_way,
    (JOIN_WAY, Op.CREATE): wecom_steps.create_join_way,
    (JOIN_WAY, Op.UPDATE): wecom_steps.update_join_way,
    (JOIN_WAY, Op.RESUME): wecom_steps.resume_join_way,
    (MP_QRCODE, Op.CREATE): mp_steps.create_mp_qrcode,
    (MP_QRCODE, Op.REPLACE): mp_steps.create_mp_qrcode,
    (MEDIA, Op.CREATE): media.upload_media,
    (MEDIA, Op.REPLACE): media.upload_media,
    (MEDIA, Op.REFRESH): media.upload_media,
    (GROUP_WELCOME, Op.CREATE): group_welcome.create_template,
    (GROUP_WELCOME, Op.UPDATE): group_welcome.edit_template,
}


def parse_corp_tags(resp: JsonObject) -> tuple[dict[str, str], dict[str, str]]:
    """``get_corp_tag_list`` → ({group_name: group_id}, {"group/tag": tag_id}); deleted ones skipped
    (docs/platform.md#corp-tags)."""
    groups: dict[str, str] = {}
    tags: dict[str, str] = {}
    raw = resp.get("tag_group")
    for group in raw if isinstance(raw, list) else []:
        if not isinstance(group, dict) or group.get("deleted"):
            continue
        name, group_id = group.get("group_name"), group.get("group_id")
        if not isinstance(name, str) or not isinstance(group_id, str) or name in groups:
            continue
        groups[name] = group_id
        for tag in group.get("tag") or []:
            if isinstance(tag, dict) and not tag.get("deleted") and isinstance(tag.get("id"), str):
                tags.setdefault(f"{name}/{tag.get('name')}", tag["id"])
    return groups, tags


def parse_mp_tags(resp: JsonObject) -> dict[str, int]:
    """``tags/get`` → {name: id}."""
    raw = resp.get("tags")
    items = raw if isinstance(raw, list) else []
    return {t["name"]: t["id"] for t in items if isinstance(t, dict) and isinstance(t.get("id"), int) and "name" in t}


async def read_platform_state(plan: Plan, target: SyncTarget) -> PlatformState:
    """Read the tag lists only when the plan would create a tag (so an unchanged sync reads nothing)."""
    state = plan.platform
    if plan.needs_read(CORP_TAG_GROUP, CORP_TAG) and target.wecom is not None:
        groups, tags = parse_corp_tags(await target.wecom.get_corp_tag_list())
        state = replace(state, corp_groups=groups, corp_tags=tags)
    if plan.needs_read(MP_TAG) and target.mp is not None:
        state = replace(state, mp_tags=parse_mp_tags(await target.mp.get_tags()))
    return state


async def _apply_corp_tags(plan: Plan, target: SyncTarget, result: SyncResult) -> None:
    by_group: dict[str, list[Action]] = {}
    for a in plan.actions:
        if a.kind in (CORP_TAG_GROUP, CORP_TAG) and a.op in (Op.CREATE, Op.ADOPT) and a.desired is not None:
            by_group.setdefault(a.desired.fields["group_name"], []).append(a)
    for name, actions in by_group.items():
        await result.run(actions, wecom_steps.sync_tag_group(name, actions, plan.platform, target))


async def apply(plan: Plan, target: SyncTarget) -> SyncResult:
    """Apply every action that needs work; a failed object is reported and the others go on.

    Raises only for failures that would repeat for every object (credentials rejected, no token).
    """
    result = SyncResult()
    await _apply_corp_tags(plan, target, result)
    for a in plan.of(MP_TAG):
        if a.op in (Op.CREATE, Op.ADOPT):
            await result.run([a], mp_steps.sync_mp_tag(a, plan.platform, target))
    for a in sorted(plan.actions, key=lambda a: a.kind == GROUP_WELCOME):  # templates after media uploads
        step = STEPS.get((a.kind, a.op))
        if step is not None:
            await result.run([a], step(a, target))
    return result
