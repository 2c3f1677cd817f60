"""The shipped content loads; loading is all or nothing; new file kinds plug in without loader changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.content import Content, ContentError, FileKind, Platform, Section, read_content
from bot.content import load_content as load_with
from bot.content.node import Node
from handlers.content import content_registry, load_content
from handlers.growth.content import channels_of
from tests.support.settings import SHIPPED_CONTENT


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, target)
    return target


def test_shipped_content_loads() -> None:
    content = load_content(SHIPPED_CONTENT)
    codes = {c.code for c in channels_of(content).channels}
    assert {"pkgcard", "mp_menu", "live_0611", "store_sh01"} <= codes
    assert {c.platform for c in channels_of(content).channels} == set(Platform)
    assert all(channels_of(content).welcome_for(c) is not None for c in channels_of(content).channels)
    assert {g.name for g in content.tag_groups} >= {"渠道", "兴趣"}
    assert any(len(m.variants) > 1 and m.variants[0].window is None for m in content.messages)
    assert any(v.window is not None for m in content.messages for v in m.variants)
    msgtypes = {a.msgtype for m in content.messages for v in m.variants for a in v.attachments}
    assert {"link", "miniprogram"} <= msgtypes
    assert all((SHIPPED_CONTENT / p).is_file() for p in content.media_paths())


def test_lookups_by_what_callbacks_carry() -> None:
    content = load_content(SHIPPED_CONTENT)
    pkgcard = channels_of(content).channel_for_state("pkgcard")
    assert pkgcard is not None and pkgcard.name == "包裹卡"
    assert pkgcard.contact_way is not None and pkgcard.contact_way.staff_on(5) == ("weekend_duty",)
    assert pkgcard.contact_way.staff_on(0) == ("lulu", "axin")
    poster = channels_of(content).channel_for_scene("poster_618")
    assert poster is not None and poster.code == "mp_poster_618"
    assert channels_of(content).channel_for_state("poster_618") is None
    friend_default = channels_of(content).default_channel(Platform.WECOM_FRIEND)
    mp_default = channels_of(content).default_channel(Platform.MP)
    assert friend_default is not None and friend_default.code == "organic"
    assert mp_default is not None and mp_default.code == "mp_follow"
    group_default = channels_of(content).default_channel(Platform.WECOM_GROUP)
    assert group_default is not None and group_default.default
    message = content.message("welcome_pkgcard")
    assert message is not None and [v.ref for v in message.variants] == ["welcome_pkgcard/a", "welcome_pkgcard/b"]


def test_broken_file_raises_and_the_previous_content_stays(shipped_copy: Path) -> None:
    current = load_content(shipped_copy)
    channels = shipped_copy / "channels.toml"
    channels.write_text(channels.read_text(encoding="utf-8") + "\n[[channels]\n", encoding="utf-8")
    tags = shipped_copy / "tags.toml"
    tags.write_text(tags.read_text(encoding="utf-8") + '[[tag_groups]]\nname = "空"\ntags = []\n', encoding="utf-8")
    try:
        current = load_content(shipped_copy)
    except ContentError as exc:
        files = {Path(p.file).name for p in exc.problems}
        assert files == {"channels.toml", "tags.toml"}
    else:
        pytest.fail("broken content loaded")
    assert channels_of(current).channel("pkgcard") is not None
    assert read_content(shipped_copy, content_registry())[0] is None


def test_one_broken_item_loads_nothing(shipped_copy: Path) -> None:
    messages = shipped_copy / "messages.toml"
    text = messages.read_text(encoding="utf-8").replace("weight = 50", "weight = -1", 1)
    messages.write_text(text, encoding="utf-8")
    content, report = read_content(shipped_copy, content_registry())
    assert content is None
    assert [p.key for p in report.problems] == ["messages[0].variants[0].weight"]


def test_content_is_immutable() -> None:
    content = load_content(SHIPPED_CONTENT)
    with pytest.raises(AttributeError):
        channels_of(content).channels[0].code = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        content.sections["channels"] = ()  # type: ignore[index]


def test_kind_directory_merges_files(shipped_copy: Path) -> None:
    (shipped_copy / "channels").mkdir()
    (shipped_copy / "channels" / "store_sh02.toml").write_text(
        '[[channels]]\ncode = "store_sh02"\nname = "上海二店"\nplatform = "wecom_friend"\n'
        'staff = ["sh02_li"]\ntags = ["兴趣/坚果"]\nwelcome = "welcome_store_sh01"\n',
        encoding="utf-8",
    )
    content = load_content(shipped_copy)
    assert channels_of(content).channel_for_state("store_sh02") is not None
    assert str(shipped_copy / "channels" / "store_sh02.toml") in content.files


def _parse_reply(node: Node) -> tuple[str, str] | None:
    keyword, reply = node.text("keyword", required=True), node.text("reply", required=True)
    node.finish()
    return None if keyword is None or reply is None else (keyword, reply)


REPLIES: Section[tuple[str, str]] = Section("replies", _parse_reply, ident=("keyword", lambda r: r[0]))


def test_a_new_file_kind_plugs_in(shipped_copy: Path) -> None:
    (shipped_copy / "replies.toml").write_text('[[replies]]\nkeyword = "签到"\nreply = "已签到"\n', encoding="utf-8")
    with pytest.raises(ContentError, match="unknown content file"):
        load_content(shipped_copy)
    registry = content_registry().with_kind(FileKind("replies", (REPLIES,)))
    content: Content = load_with(shipped_copy, registry)
    assert content.get(REPLIES) == (("签到", "已签到"),)
    assert len(channels_of(content).channels) == len(channels_of(load_content(SHIPPED_CONTENT)).channels)
    with pytest.raises(ValueError, match="already registered"):
        registry.with_kind(FileKind("replies", ()))
