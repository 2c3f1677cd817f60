"""``plan_sync``: compare what the content wants with what was recorded (and, for tags, what the
platform shows) and decide one :class:`~handlers.growth.sync.model.Action` per object. No platform or database I/O
(a group welcome template's attachment file is hashed, :mod:`handlers.growth.sync.group_welcome`).

A changed group welcome template is an ``update`` (``edit`` keeps its ``template_id``, so groups that
applied it keep it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.content import Content
from handlers.growth.sync.desired import desired_objects
from handlers.growth.sync.model import (
    CONTACT_WAY,
    CORP_TAG,
    CORP_TAG_GROUP,
    JOIN_WAY,
    KIND_ORDER,
    MP_QRCODE,
    MP_TAG,
    Action,
    Desired,
    ObjectId,
    Op,
    Plan,
    PlatformState,
    Record,
)

TAG_KINDS = (CORP_TAG_GROUP, CORP_TAG, MP_TAG)


def recorded_fields(record: Record) -> Mapping[str, Any]:
    fields = record.data.get("fields")
    return fields if isinstance(fields, dict) else {}


def changed_fields(desired: Desired, record: Record) -> tuple[str, ...]:
    before = recorded_fields(record)
    keys = sorted(set(before) | set(desired.fields))
    return tuple(k for k in keys if before.get(k) != desired.fields.get(k))


def _on_platform(desired: Desired, platform: PlatformState) -> bool:
    """Whether a tag we have no record of already exists under its name (then it is adopted)."""
    if desired.kind == CORP_TAG_GROUP:
        return platform.corp_groups is not None and desired.key in platform.corp_groups
    if desired.kind == CORP_TAG:
        return platform.corp_tags is not None and desired.key in platform.corp_tags
    if desired.kind == MP_TAG:
        return platform.mp_tags is not None and desired.fields["name"] in platform.mp_tags
    return False


def _new_object(desired: Desired, platform: PlatformState) -> Action:
    op = Op.ADOPT if _on_platform(desired, platform) else Op.CREATE
    return Action(op, desired.kind, desired.key, desired, None)


def _changed_object(desired: Desired, record: Record) -> Action:
    """A recorded object whose settings changed: update in place when the platform allows it.

    ``type`` of a 「联系我」 code and the scene of an Official Account QR code cannot be edited
    (docs/platform.md#contact-me-codes,
    docs/platform.md#parametric-qr-codes), so those changes mean a new code (a new QR to print); the old one keeps
    working.
    """
    changes = changed_fields(desired, record)
    replace = desired.kind == MP_QRCODE or (desired.kind == CONTACT_WAY and "type" in changes)
    return Action(Op.REPLACE if replace else Op.UPDATE, desired.kind, desired.key, desired, record, changes)


def recorded_action(desired: Desired, record: Record) -> Action:
    if desired.kind in TAG_KINDS:
        # Tags are identified by their names, so a recorded tag is the wanted tag. A renamed tag in
        # content is a new key: the new name is created, the old tag stays (reported stale).
        return Action(Op.UNCHANGED, desired.kind, desired.key, desired, record)
    if record.fingerprint != desired.fingerprint:
        return _changed_object(desired, record)
    if desired.kind in (CONTACT_WAY, JOIN_WAY) and not record.data.get("qr_code"):
        return Action(Op.RESUME, desired.kind, desired.key, desired, record, ("qr_code",))
    return Action(Op.UNCHANGED, desired.kind, desired.key, desired, record)


def plan_sync(
    content: Content,
    current_objects: Iterable[Record],
    platform_state: PlatformState | None = None,
) -> Plan:
    """One action per wanted object, plus ``stale`` for recorded objects the content dropped.

    ``platform_state`` (tags read from the platform) turns ``create`` into ``adopt`` for tags that
    already exist under our names; without it, planning uses the records alone (``--dry-run``).
    """
    platform = platform_state or PlatformState()
    records: dict[ObjectId, Record] = {r.id: r for r in current_objects}
    actions: list[Action] = []
    wanted: set[ObjectId] = set()
    for desired in desired_objects(content):
        wanted.add(desired.id)
        record = records.get(desired.id)
        actions.append(_new_object(desired, platform) if record is None else recorded_action(desired, record))
    for object_id, record in records.items():
        if object_id not in wanted and record.kind in KIND_ORDER:
            actions.append(Action(Op.STALE, record.kind, record.key, None, record))
    return Plan(tuple(actions), platform)
