"""Applying WeCom actions: corp tags (docs/platform.md#corp-tags), 「联系我」 codes
(docs/platform.md#contact-me-codes), 「加入群聊」 codes (docs/platform.md#join-group-codes).

Every created object is saved right after the call that created it. Tags are never edited or deleted:
an app may edit/delete only the tags it created [W:96320], and tags are identified by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.platform import JsonObject, WeComClient
from handlers.growth.sync.model import CORP_TAG, CORP_TAG_GROUP, Action, Op, PlatformState, Record
from handlers.growth.sync.target import SyncTarget, UnexpectedResponse, object_field, record_of, text_field, wanted

ADD_CORP_TAG = "externalcontact/add_corp_tag"
UPDATE_JOIN_WAY = "externalcontact/groupchat/update_join_way"
GET_CONTACT_WAY = "externalcontact/get_contact_way"


def _group_id(name: str, group: Action | None, platform: PlatformState) -> str | None:
    """The group to add tags to: as the platform shows it when it was read, else as recorded.

    ``None`` means "create it": ``add_corp_tag`` with ``group_name`` creates the group, or adds to an
    existing group of that name [W:96320].
    """
    if platform.corp_groups is not None:
        return platform.corp_groups.get(name)
    return None if group is None or group.record is None else group.record.remote_id


def _adopted(actions: Sequence[Action], platform: PlatformState) -> list[Record]:
    out: list[Record] = []
    for a in actions:
        if a.op is not Op.ADOPT:
            continue
        found = (platform.corp_groups if a.kind == CORP_TAG_GROUP else platform.corp_tags) or {}
        out.append(record_of(wanted(a), found[a.key], created=False))
    return out


def _created_ids(resp: JsonObject) -> tuple[str, dict[str, str]]:
    group = object_field(ADD_CORP_TAG, resp, "tag_group")
    group_id = text_field(ADD_CORP_TAG, group, "group_id")
    tags = group.get("tag")
    if not isinstance(tags, list):
        raise UnexpectedResponse(ADD_CORP_TAG, "no tag list in the answer")
    return group_id, {t["name"]: t["id"] for t in tags if isinstance(t, dict) and "name" in t and "id" in t}


async def sync_tag_group(name: str, actions: Sequence[Action], platform: PlatformState, target: SyncTarget) -> None:
    """Adopt what exists, then create the group's missing tags with one ``add_corp_tag`` call."""
    group = next((a for a in actions if a.kind == CORP_TAG_GROUP), None)
    await target.store.save(*_adopted(actions, platform))
    creates = [a for a in actions if a.kind == CORP_TAG and a.op is Op.CREATE]
    if not creates:
        return
    group_id = _group_id(name, group, platform)
    names = [wanted(a).fields["name"] for a in creates]
    client = target.wecom_client()
    tags = [{"name": n} for n in names]
    resp = await client.add_corp_tag(tags, group_id=group_id, group_name=None if group_id else name)
    new_group_id, ids = _created_ids(resp)
    missing = [n for n in names if n not in ids]
    records = [record_of(wanted(a), ids[n], created=True) for a, n in zip(creates, names, strict=True) if n in ids]
    if group is not None and (group.record is None or group.record.remote_id != new_group_id):
        records.append(record_of(wanted(group), new_group_id, created=group_id is None))
    await target.store.save(*records)
    if missing:
        raise UnexpectedResponse(ADD_CORP_TAG, f"tags not in the answer: {', '.join(missing)}")


async def create_contact_way(action: Action, target: SyncTarget) -> None:
    """``add_contact_way`` → ``config_id`` and ``qr_code`` (scene 2) [W:96348]; a replaced code's
    ``config_id`` is kept in ``replaced`` (the old code still works; nothing is deleted)."""
    desired, f = wanted(action), wanted(action).fields
    resp = await target.wecom_client().add_contact_way(
        f["type"], f["scene"], user=f["user"], state=f["state"], remark=f["remark"], skip_verify=f["skip_verify"]
    )
    config_id = text_field("externalcontact/add_contact_way", resp, "config_id")
    record = record_of(desired, config_id, replaced=_replaced(action))
    await target.store.save(record)
    qr_code = resp.get("qr_code")
    if isinstance(qr_code, str) and qr_code:
        await _save_qr(record, qr_code, target)
    else:
        await _fetch_contact_qr(target.wecom_client(), record, target)


async def update_contact_way(action: Action, target: SyncTarget) -> None:
    """``update_contact_way`` with every editable field; the given ``user`` list replaces the old one."""
    desired, f, record = wanted(action), wanted(action).fields, _record(action)
    await target.wecom_client().update_contact_way(
        _config_id(record), remark=f["remark"], skip_verify=f["skip_verify"], state=f["state"], user=f["user"]
    )
    updated = record_of(desired, record.remote_id, **_extras(record))
    await target.store.save(updated)
    if not updated.data.get("qr_code"):
        await _fetch_contact_qr(target.wecom_client(), updated, target)


async def create_join_way(action: Action, target: SyncTarget) -> None:
    """``groupchat/add_join_way`` → ``config_id`` (saved at once), then ``get_join_way`` → ``qr_code``."""
    desired, f = wanted(action), wanted(action).fields
    client = target.wecom_client()
    resp = await client.add_join_way(
        f["scene"],
        f["chat_id_list"],
        remark=f["remark"],
        auto_create_room=f["auto_create_room"],
        room_base_name=f.get("room_base_name"),
        room_base_id=f.get("room_base_id"),
        state=f["state"],
    )
    config_id = text_field("externalcontact/groupchat/add_join_way", resp, "config_id")
    record = record_of(desired, config_id)
    await target.store.save(record)
    await _fetch_join_qr(client, record, target)


async def update_join_way(action: Action, target: SyncTarget) -> None:
    """``groupchat/update_join_way`` takes the whole configuration again (scene, chat_id_list …) [W:99547]."""
    desired, record = wanted(action), _record(action)
    client = target.wecom_client()
    await client.call(UPDATE_JOIN_WAY, {"config_id": _config_id(record), **desired.fields})
    updated = record_of(desired, record.remote_id, **_extras(record))
    await target.store.save(updated)
    if not updated.data.get("qr_code"):
        await _fetch_join_qr(client, updated, target)


async def resume_join_way(action: Action, target: SyncTarget) -> None:
    await _fetch_join_qr(target.wecom_client(), _record(action), target)


async def resume_contact_way(action: Action, target: SyncTarget) -> None:
    await _fetch_contact_qr(target.wecom_client(), _record(action), target)


async def _fetch_contact_qr(client: WeComClient, record: Record, target: SyncTarget) -> None:
    """``get_contact_way`` for a code whose ``qr_code`` was not recorded [W:96348]."""
    resp = await client.call(GET_CONTACT_WAY, {"config_id": _config_id(record)})
    await _save_qr(
        record, text_field(GET_CONTACT_WAY, object_field(GET_CONTACT_WAY, resp, "contact_way"), "qr_code"), target
    )


async def _fetch_join_qr(client: WeComClient, record: Record, target: SyncTarget) -> None:
    api = "externalcontact/groupchat/get_join_way"
    join_way = object_field(api, await client.get_join_way(_config_id(record)), "join_way")
    await _save_qr(record, text_field(api, join_way, "qr_code"), target)


async def _save_qr(record: Record, qr_code: str, target: SyncTarget) -> None:
    data = {**record.data, "qr_code": qr_code}
    await target.store.save(Record(record.kind, record.key, record.remote_id, record.fingerprint, data))


def _record(action: Action) -> Record:
    if action.record is None:
        raise ValueError(f"{action.kind} {action.key}: no record to update")
    return action.record


def _config_id(record: Record) -> str:
    if not record.remote_id:
        raise ValueError(f"{record.kind} {record.key}: no config_id recorded")
    return record.remote_id


def _extras(record: Record) -> dict[str, Any]:
    return {k: v for k, v in record.data.items() if k != "fields"}


def _replaced(action: Action) -> list[str]:
    if action.record is None:
        return []
    earlier = action.record.data.get("replaced")
    return [
        *(earlier if isinstance(earlier, list) else []),
        *([action.record.remote_id] if action.record.remote_id else []),
    ]
