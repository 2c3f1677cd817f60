"""What ``content sync`` compares: desired objects (from content), records (``platform_objects``), actions.

A platform object is identified by ``(kind, key)``: ``("corp_tag", "渠道/包裹卡")``,
``("contact_way", "pkgcard")``. Its *fingerprint* is the sha256 of the canonical JSON of the fields
we send; an object whose record carries the same fingerprint is left alone without asking the
platform anything, so a second sync makes no call at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

CORP_TAG_GROUP = "corp_tag_group"  # remote_id = group_id (docs/platform.md#corp-tags)
CORP_TAG = "corp_tag"  # key "group/tag", remote_id = tag id; handlers pass it to mark_tag
CONTACT_WAY = "contact_way"  # key channel code, remote_id = config_id, data.qr_code (docs/platform.md#contact-me-codes)
JOIN_WAY = "join_way"  # key channel code, remote_id = config_id, data.qr_code (docs/platform.md#join-group-codes)
MP_TAG = "mp_tag"  # key "group/tag", remote_id = OA tag id (int as text)
MP_QRCODE = "mp_qrcode"  # key channel code, remote_id = ticket, data.url (docs/platform.md#parametric-qr-codes)
MEDIA = "media"  # key content-relative path, remote_id = media_id, data.sha256 / data.created_at [W:90253]
# docs/platform.md#group-welcome-templates
GROUP_WELCOME = "group_welcome_template"  # key channel code, remote_id = template_id

KIND_ORDER = (CORP_TAG_GROUP, CORP_TAG, MP_TAG, CONTACT_WAY, JOIN_WAY, MP_QRCODE, GROUP_WELCOME)
CHANNEL_KINDS = (CONTACT_WAY, JOIN_WAY, MP_QRCODE)

ObjectId = tuple[str, str]


def fingerprint(fields: Mapping[str, Any]) -> str:
    """sha256 (hex, 64 chars) of the canonical JSON of ``fields``."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Desired:
    """One object as the content wants it; ``fields`` are JSON values (what the platform gets)."""

    kind: str
    key: str
    fields: Mapping[str, Any]

    @property
    def id(self) -> ObjectId:
        return (self.kind, self.key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.fields)


@dataclass(frozen=True)
class Record:
    """A row of ``platform_objects`` as read before planning."""

    kind: str
    key: str
    remote_id: str | None
    fingerprint: str
    data: Mapping[str, Any]

    @property
    def id(self) -> ObjectId:
        return (self.kind, self.key)


@dataclass(frozen=True)
class PlatformState:
    """What a read of the platform showed; ``None`` = not read (planning from records only).

    Only tags are read: they can be adopted by name. Channel codes cannot be found again without their
    ``config_id`` (API-created codes are not listed in the admin console,
    docs/platform.md#contact-me-codes), so they come from records.
    """

    corp_groups: Mapping[str, str] | None = None  # group_name -> group_id
    corp_tags: Mapping[str, str] | None = None  # "group/tag" -> tag id
    mp_tags: Mapping[str, int] | None = None  # OA tag name -> id


class Op(StrEnum):
    CREATE = "create"  # write: a new platform object
    UPDATE = "update"  # write: same object (same QR), new settings
    REPLACE = "replace"  # write: a new object because the old one cannot change this (new QR to print)
    ADOPT = "adopt"  # no write: already on the platform under our name, only recorded
    RESUME = "resume"  # read only: created earlier, its QR URL is still missing
    REFRESH = "refresh"  # write: same file uploaded again because its media_id is about to expire
    UNCHANGED = "unchanged"  # nothing to do
    STALE = "stale"  # recorded but no longer in content: left on the platform, never deleted


WRITE_OPS = frozenset({Op.CREATE, Op.UPDATE, Op.REPLACE, Op.REFRESH})


@dataclass(frozen=True)
class Action:
    op: Op
    kind: str
    key: str
    desired: Desired | None
    record: Record | None
    changes: tuple[str, ...] = ()  # the fields that differ from the record (update/replace)

    def line(self) -> str:
        """``update     contact_way     pkgcard  (user, remark)``: ASCII columns first, the key last."""
        detail = f"  ({', '.join(self.changes)})" if self.changes else ""
        return f"{self.op.value:<10} {self.kind:<15} {self.key}{detail}"


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    platform: PlatformState = field(default_factory=PlatformState)

    def of(self, kind: str) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind == kind)

    @property
    def writes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.op in WRITE_OPS)

    @property
    def has_work(self) -> bool:
        return any(a.op not in (Op.UNCHANGED, Op.STALE) for a in self.actions)

    def needs_read(self, *kinds: str) -> bool:
        """Whether an object of ``kinds`` would be created: read the platform first to adopt it instead."""
        return any(a.op is Op.CREATE and a.kind in kinds for a in self.actions)

    def summary(self) -> str:
        counts = {op: sum(1 for a in self.actions if a.op is op) for op in Op}
        return (
            "plan: " + ", ".join(f"{n} {op.value}" for op, n in counts.items() if n) if self.actions else "plan: empty"
        )
