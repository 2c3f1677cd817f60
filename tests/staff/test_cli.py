"""``siyu-bot staff …`` wired into the command line: the reports on an empty database, and a rule given twice
refused before anything is read."""

from __future__ import annotations

import pytest

from handlers import main


@pytest.fixture
def env_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIYU_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SIYU_WECOM_CORP_ID", "wwsimcorp0000000001")
    monkeypatch.setenv("SIYU_WECOM_SECRET", "sim-corp-secret")
    monkeypatch.setenv("SIYU_WECOM_API_BASE_URL", "http://127.0.0.1:9/wecom")  # never reached by these commands
    monkeypatch.delenv("SIYU_CONFIG", raising=False)
    monkeypatch.chdir(sqlite_url.removeprefix("sqlite+aiosqlite:///").rsplit("/", 1)[0])
    return sqlite_url


def test_reports_and_refusals(env_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["staff", "transfers", "--pending"]) == 0
    assert capsys.readouterr().out.strip() == "no transfers yet"
    assert main(["staff", "audit"]) == 0
    assert capsys.readouterr().out.strip() == "no transfer commands yet"
    assert main(["staff", "transfer", "--from", "leaver", "--to", "heir", "--rule", "same-department"]) == 2
    assert "give exactly one of --to" in capsys.readouterr().out
    assert main(["staff", "transfer", "--from", "leaver", "--rule", "round-robin:"]) == 2
    assert "unknown rule 'round-robin:'" in capsys.readouterr().out
