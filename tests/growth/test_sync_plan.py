"""``plan_sync`` without I/O: which action each object gets from content, records and platform state."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.content import Content
from handlers.content import load_content
from handlers.growth.content.model import ContactWay
from handlers.growth.sync import (
    CONTACT_WAY,
    CORP_TAG,
    GROUP_WELCOME,
    JOIN_WAY,
    MP_QRCODE,
    MP_TAG,
    Op,
    Plan,
    PlatformState,
    Record,
    plan_sync,
)
from handlers.growth.sync.desired import contact_way_type, desired_objects
from handlers.growth.sync.model import fingerprint
from tests.growth.helpers import CHANNELS, CHAT_IDS, write_content


@pytest.fixture
def content(tmp_path: Path) -> Content:
    return load_content(write_content(tmp_path / "content"))


def synced_records(content: Content) -> list[Record]:
    """Records as a complete earlier sync would have left them."""
    out = []
    for d in desired_objects(content):
        extra = {"qr_code": "https://wework.qpic.cn/wwpic/1/0"} if d.kind in (CONTACT_WAY, JOIN_WAY) else {}
        out.append(Record(d.kind, d.key, f"id-{d.key}", d.fingerprint, {"fields": dict(d.fields), **extra}))
    return out


def _without_qr(r: Record) -> Record:
    return Record(r.kind, r.key, r.remote_id, r.fingerprint, {"fields": r.data["fields"]})


def ops(plan: Plan) -> dict[tuple[str, str], Op]:
    return {(a.kind, a.key): a.op for a in plan.actions}


def test_empty_records_plan_creates_every_object(content: Content) -> None:
    plan = plan_sync(content, [])
    assert set(ops(plan).values()) == {Op.CREATE}
    assert len(plan.writes) == 14  # 2 groups + 4 corp tags + 3 OA tags + 2 contact ways + 1 join way + 1 QR
    # … + 1 group welcome template (the wecom_group channel's welcome)
    assert plan.needs_read(CORP_TAG) and plan.needs_read(MP_TAG)
    fields = {a.key: a.desired.fields for a in plan.of(CONTACT_WAY) if a.desired}
    assert fields["pkgcard"] == {
        "type": 2,
        "scene": 2,
        "state": "pkgcard",
        "skip_verify": True,
        "remark": "包裹卡",
        "user": ["lulu", "axin"],
    }
    assert fields["store"]["type"] == 1 and fields["store"]["skip_verify"] is False
    join = plan.of(JOIN_WAY)[0].desired
    assert join is not None and join.fields["chat_id_list"] == list(CHAT_IDS)
    qr = plan.of(MP_QRCODE)[0].desired
    assert qr is not None and qr.fields == {"action_name": "QR_LIMIT_STR_SCENE", "scene_str": "poster_618"}
    template = plan.of(GROUP_WELCOME)[0].desired
    assert (
        template is not None and template.key == "fans" and template.fields == {"text": {"content": "你好%NICKNAME%"}}
    )


def test_recorded_objects_are_unchanged_and_need_no_read(content: Content) -> None:
    plan = plan_sync(content, synced_records(content))
    assert set(ops(plan).values()) == {Op.UNCHANGED}
    assert not plan.has_work and not plan.writes and not plan.needs_read(CORP_TAG, MP_TAG)
    assert plan.summary() == "plan: 14 unchanged"


def test_changed_staff_is_one_update_with_the_changed_field(tmp_path: Path, content: Content) -> None:
    changed = load_content(write_content(tmp_path / "c2", CHANNELS.replace('["lulu", "axin"]', '["axin", "lulu"]')))
    plan = plan_sync(changed, synced_records(content))
    assert [(a.op, a.key, a.changes) for a in plan.writes] == [(Op.UPDATE, "pkgcard", ("user",))]
    assert plan.writes[0].line() == "update     contact_way     pkgcard  (user)"


def test_contact_way_type_change_and_new_scene_are_replacements(tmp_path: Path, content: Content) -> None:
    text = CHANNELS.replace('staff = ["lulu", "axin"]', 'staff = ["lulu"]').replace("poster_618", "poster_1111")
    plan = plan_sync(load_content(write_content(tmp_path / "c2", text)), synced_records(content))
    assert {(a.kind, a.key): a.op for a in plan.writes} == {
        (CONTACT_WAY, "pkgcard"): Op.REPLACE,
        (MP_QRCODE, "poster"): Op.REPLACE,
    }


def test_join_way_without_qr_resumes_and_dropped_channel_is_stale(tmp_path: Path, content: Content) -> None:
    records = synced_records(content)
    records = [_without_qr(r) if r.kind == JOIN_WAY else r for r in records]
    without_poster = CHANNELS.split('[[channels]]\ncode = "poster"')[0]
    plan = plan_sync(load_content(write_content(tmp_path / "c2", without_poster)), records)
    assert ops(plan)[(JOIN_WAY, "fans")] is Op.RESUME
    assert ops(plan)[(MP_QRCODE, "poster")] is Op.STALE
    assert not plan.writes


def test_platform_state_turns_create_into_adopt_for_tags_only(content: Content) -> None:
    platform = PlatformState(corp_groups={"渠道": "etGROUP"}, corp_tags={"渠道/包裹卡": "etTAG"}, mp_tags={"海报": 101})
    found = ops(plan_sync(content, [], platform))
    assert found[("corp_tag_group", "渠道")] is Op.ADOPT
    assert found[(CORP_TAG, "渠道/包裹卡")] is Op.ADOPT
    assert found[(CORP_TAG, "渠道/海报")] is Op.CREATE
    assert found[(MP_TAG, "渠道/海报")] is Op.ADOPT
    assert found[(MP_TAG, "渠道/包裹卡")] is Op.CREATE
    assert found[(CONTACT_WAY, "pkgcard")] is Op.CREATE


def test_contact_way_type_covers_every_list_the_rotation_may_set() -> None:
    single = ContactWay(("a",), None, None, (), True)
    assert contact_way_type(single) == 1
    assert contact_way_type(ContactWay(("a",), ((), (), (), (), (), ("b", "c"), ()), None, (), True)) == 2
    assert contact_way_type(ContactWay(("a",), None, 10, ("b", "c"), True)) == 2
    assert contact_way_type(ContactWay(("a",), ((), (), (), (), (), ("b",), ()), 10, ("c",), True)) == 1


def test_fingerprint_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": ["x"]}) == fingerprint({"b": ["x"], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2}) and len(fingerprint({})) == 64
