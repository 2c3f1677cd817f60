"""The command line reaches every operator command (wiring, exit codes, no secrets printed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from handlers import features, main
from tests.support.settings import SHIPPED_CONTENT


@pytest.fixture
def env_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIYU_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SIYU_WECOM_SECRET", "corp-secret-never-printed")
    return sqlite_url


def test_events_lists_nothing_on_a_fresh_database(env_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "(no events yet)" in out and "corp-secret" not in out


def test_lottery_status_publishes_the_seed_hash_but_not_the_seed(
    env_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lottery", "status"]) == 0
    out = capsys.readouterr().out
    assert "unbox" in out


def test_lottery_verify_refuses_a_running_or_unknown_campaign(env_db: str) -> None:
    assert main(["lottery", "verify", "no-such-campaign"]) == 2


def test_bad_config_is_reported_with_its_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIYU_SERVER_PORT", "eighty")
    assert main(["events"]) == 2
    assert "server.port" in capsys.readouterr().err


def test_serve_with_several_workers_is_refused_on_sqlite(env_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PostgreSQL" in err and "SQLite has one writer" in err


def test_serve_workers_without_gunicorn_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setenv("SIYU_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/never-contacted")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gunicorn" else real(name, *a))
    assert main(["serve", "--workers", "2"]) == 2
    assert "pip install 'siyu-bot[workers]'" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_serve_workers_must_be_a_positive_count_or_auto(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--workers", bad])
    assert exc.value.code == 2 and "--workers" in capsys.readouterr().err


def test_serve_workers_auto_is_one_per_core() -> None:
    import os

    from bot.cli import build_parser

    parser = build_parser(features())
    assert parser.parse_args(["serve", "--workers", "auto"]).workers == (os.cpu_count() or 1)
    assert parser.parse_args(["serve"]).workers is None


def test_content_push_revisions_diff_rollback_pull(
    env_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, content)
    assert main(["content", "push", "--dir", str(content), "-m", "first"]) == 0
    assert "published revision 1" in capsys.readouterr().out
    assert main(["content", "push", "--dir", str(content)]) == 0
    assert "unchanged" in capsys.readouterr().out
    messages = content / "messages.toml"
    messages.write_text(messages.read_text(encoding="utf-8").replace("小鹿", "小鹿2", 1), encoding="utf-8")
    assert main(["content", "diff", "--dir", str(content)]) == 0
    assert "+" in capsys.readouterr().out
    (content / "broken.toml").write_text("x = 1\n", encoding="utf-8")
    assert main(["content", "push", "--dir", str(content)]) == 1
    err = capsys.readouterr().err
    assert "broken.toml" in err and "nothing published" in err
    (content / "broken.toml").unlink()
    assert main(["content", "push", "--dir", str(content), "-m", "second"]) == 0
    assert main(["content", "revisions"]) == 0
    out = capsys.readouterr().out
    assert "live" in out and "second" in out and "first" in out
    assert main(["content", "rollback"]) == 0
    assert "revision 1 is live again" in capsys.readouterr().out
    assert main(["content", "pull", "--dir", str(content)]) == 0
    assert "小鹿2" not in messages.read_text(encoding="utf-8")
    assert main(["content", "rollback", "--revision", "99"]) == 1
