"""WeCom corp customer tags: ``get/add/edit/del_corp_tag`` (docs/platform.md#corp-tags, [W:96320]).

Rules: ≤ 3000 corp tags per corp (40126); names ≤ 30 chars (40058); a duplicate name in one group →
40071 "标签名字已经存在"; unknown ids → 40068; an app may edit or delete only the tags it created →
81011 "无权限操作标签" (tags seeded with ``SimState.add_corp_tag`` count as made in the console).
A group whose last tag is deleted disappears with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.simulator.api import INVALID_PARAM, INVALID_TAG_ID, ApiError, ApiRequest, Route, opt_int, opt_str, str_list
from bot.simulator.models import CorpTag, CorpTagGroup

if TYPE_CHECKING:
    from bot.simulator.state import SimState

MAX_CORP_TAGS = 3000
NAME_MAX = 30


def _tag_json(tag: CorpTag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "create_time": tag.create_time, "order": tag.order, "deleted": False}


def _group_json(group: CorpTagGroup, tags: list[CorpTag]) -> dict[str, Any]:
    ordered = sorted(tags, key=lambda t: (-t.order, t.create_time))
    return {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        "deleted": False,
        "tag": [_tag_json(t) for t in ordered],
    }


def get_corp_tag_list(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/get_corp_tag_list``: empty filter → all; ``group_id`` wins over ``tag_id``.
    Larger ``order`` sorts first (docs/platform.md#corp-tags)."""
    group_ids, tag_ids = str_list(req.body, "group_id"), str_list(req.body, "tag_id")
    out = []
    for group in sorted(state.tag_groups.values(), key=lambda g: (-g.order, g.create_time)):
        tags = [state.tags[t] for t in group.tag_ids]
        if group_ids and group.group_id not in group_ids:
            continue
        if not group_ids and tag_ids:
            tags = [t for t in tags if t.id in tag_ids]
            if not tags:
                continue
        out.append(_group_json(group, tags))
    return {"tag_group": out}


def _target_group(state: SimState, body: dict[str, Any]) -> CorpTagGroup:
    """``group_id`` adds to that group; else ``group_name`` (re)uses or creates a group (docs/platform.md#corp-tags)."""
    group_id = opt_str(body, "group_id")
    if group_id:
        group = state.tag_groups.get(group_id)
        if group is None:
            raise ApiError(INVALID_TAG_ID, "invalid tag group id")
        return group
    name = opt_str(body, "group_name", max_len=NAME_MAX)
    if not name:
        raise ApiError(INVALID_PARAM, "group_id or group_name required")
    found = next((g for g in state.tag_groups.values() if g.group_name == name), None)
    if found is not None:
        return found
    group = CorpTagGroup(state.new_id("et", 20), name, state.ts(), opt_int(body, "order", 0))
    state.tag_groups[group.group_id] = group
    return group


def _new_tags(state: SimState, body: dict[str, Any], group: CorpTagGroup) -> list[tuple[str, int]]:
    items = body.get("tag")
    if not isinstance(items, list) or not items:
        raise ApiError(INVALID_PARAM, "tag list required")
    existing = {state.tags[t].name for t in group.tag_ids}
    out: list[tuple[str, int]] = []
    for item in items:
        if not isinstance(item, dict):
            raise ApiError(INVALID_PARAM, "tag items must be objects")
        name = opt_str(item, "name", max_len=NAME_MAX)
        if not name:
            raise ApiError(INVALID_PARAM, "tag name required")
        if name in existing:
            raise ApiError(40071, "tag name exists")
        existing.add(name)
        out.append((name, opt_int(item, "order", 0)))
    if len(state.tags) + len(out) > MAX_CORP_TAGS:
        raise ApiError(40126, "corp tag count exceeds 3000")
    return out


def add_corp_tag(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/add_corp_tag``: answers ``tag_group`` with the new tags only."""
    wanted_group = state.tag_groups.copy()
    group = _target_group(state, req.body)
    try:
        names = _new_tags(state, req.body, group)
    except ApiError:
        state.tag_groups = wanted_group  # a failed call creates nothing
        raise
    created = []
    for name, order in names:
        tag = CorpTag(state.new_id("et", 20), name, group.group_id, state.ts(), order)
        state.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
        created.append(tag)
    return {"tag_group": _group_json(group, created)}


def _editable(created_by_api: bool) -> None:
    if not created_by_api:
        raise ApiError(81011, "no privilege to access/modify tag")


def edit_corp_tag(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/edit_corp_tag``: ``id`` is a tag or a group id; ``name`` ≤ 30, ``order``."""
    b = req.body
    target_id = opt_str(b, "id")
    name = opt_str(b, "name", max_len=NAME_MAX)
    target: CorpTag | CorpTagGroup | None = state.tags.get(target_id or "") or state.tag_groups.get(target_id or "")
    if target is None:
        raise ApiError(INVALID_TAG_ID, "invalid tagid")
    _editable(target.created_by_api)
    if isinstance(target, CorpTag):
        siblings = {state.tags[t].name for t in state.tag_groups[target.group_id].tag_ids if t != target.id}
        if name and name in siblings:
            raise ApiError(40071, "tag name exists")
        target.name = name or target.name
    else:
        target.group_name = name or target.group_name
    target.order = opt_int(b, "order", target.order)
    return {}


def del_corp_tag(state: SimState, req: ApiRequest) -> dict[str, Any]:
    """``externalcontact/del_corp_tag`` by ``tag_id`` and/or ``group_id`` lists (docs/platform.md#corp-tags)."""
    tag_ids, group_ids = str_list(req.body, "tag_id"), str_list(req.body, "group_id")
    if not tag_ids and not group_ids:
        raise ApiError(INVALID_PARAM, "tag_id and group_id can not both be empty")
    if any(t not in state.tags for t in tag_ids) or any(g not in state.tag_groups for g in group_ids):
        raise ApiError(INVALID_TAG_ID, "invalid tagid")
    doomed = set(tag_ids)
    for group_id in group_ids:
        doomed.update(state.tag_groups[group_id].tag_ids)
    for tag_id in doomed:
        _editable(state.tags[tag_id].created_by_api)
    for tag_id in doomed:
        tag = state.tags.pop(tag_id)
        group = state.tag_groups[tag.group_id]
        group.tag_ids.remove(tag_id)
        if not group.tag_ids:
            del state.tag_groups[group.group_id]
    for group_id in group_ids:
        state.tag_groups.pop(group_id, None)
    for contact in state.contacts.values():
        for follow in contact.follow.values():
            follow.tag_ids = [t for t in follow.tag_ids if t not in doomed]
    return {}


ROUTES = {
    "externalcontact/get_corp_tag_list": Route(get_corp_tag_list),
    "externalcontact/add_corp_tag": Route(add_corp_tag),
    "externalcontact/edit_corp_tag": Route(edit_corp_tag),
    "externalcontact/del_corp_tag": Route(del_corp_tag),
}
