"""The command line reaches every operator command (wiring, exit codes, no secrets printed)."""

from __future__ import annotations

import pytest

from handlers import main


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
