"""``siyu-bot content check``: a summary line for good content, file:key: reason lines otherwise."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from handlers.content import check_content
from tests.support.settings import SHIPPED_CONTENT


def test_shipped_content_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_content(str(SHIPPED_CONTENT)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "OK: 29 messages, 30 tags"
    assert lines[1] == "channels: 8 (mp 2, wecom_friend 5, wecom_group 1)"
    assert lines[2] == "SOP: 4 drips; 12 group posts"  # each feature's lines (Feature.content_reports)
    assert "interactions: 1 lottery campaign; 2 coupon pools; 6 keyword rules; check-in on; referral on" in lines
    assert any("(guideline 3:3:3:1)" in line for line in lines)  # the group-post mix follows (test_content_sop)


def test_content_without_sop_or_interactions_prints_one_line(tmp_path: Path) -> None:
    root = tmp_path / "content"
    root.mkdir()
    for name in ("channels", "messages", "tags"):
        shutil.copy(SHIPPED_CONTENT / f"{name}.toml", root)
    shutil.copytree(SHIPPED_CONTENT / "media", root / "media")
    out = io.StringIO()
    assert check_content(str(root), out) == 0
    assert out.getvalue() == "OK: 8 messages, 30 tags\nchannels: 8 (mp 2, wecom_friend 5, wecom_group 1)\n"


def test_problems_are_printed_one_per_line(tmp_path: Path) -> None:
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    channels = root / "channels.toml"
    text = channels.read_text(encoding="utf-8").replace(
        'code = "mp_menu"', 'code = "mp_menu"\nstate = "' + "x" * 31 + '"'
    )
    channels.write_text(text.replace('welcome = "welcome_live_0611"', 'welcome = "welcome_live"'), encoding="utf-8")
    out = io.StringIO()
    assert check_content(str(root), out) == 1
    assert out.getvalue().splitlines() == [
        f"{channels}:channels[1].state: longer than 30 characters (31)",
        f"{channels}:channels[2].welcome: message 'welcome_live' not found",
    ]


def test_relative_path_is_reported_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(SHIPPED_CONTENT, tmp_path / "content")
    (tmp_path / "content" / "tags.toml").write_text("[[tag_groups]]\nname = 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert check_content("content", out) == 1
    assert out.getvalue().splitlines()[0] == "content/tags.toml:tag_groups[0].name: must be a string, got integer"
