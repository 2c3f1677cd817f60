"""``siyu-bot webhooks …`` round trip on a real (SQLite) database: add prints the secret once, list shows
the endpoint, disable/enable flip it, deliveries lists what was queued, replay queues it again, remove."""

from __future__ import annotations

import re
import sqlite3

import pytest

from handlers import main


@pytest.fixture
def env_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SIYU_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SIYU_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
    monkeypatch.delenv("SIYU_CONFIG", raising=False)
    monkeypatch.chdir(sqlite_url.removeprefix("sqlite+aiosqlite:///").rsplit("/", 1)[0])
    return sqlite_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["webhooks", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_webhooks_cli_round_trip(env_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "add", "http://127.0.0.1:9/hook", "--events", "customer.created,order.recorded")
    assert code == 0
    endpoint = int(re.search(r"endpoint (\d+) added", out).group(1))  # type: ignore[union-attr]
    secret = re.search(r"secret: (whsec_\S+)", out).group(1)  # type: ignore[union-attr]

    code, out, _ = run(capsys, "list")
    assert code == 0 and "http://127.0.0.1:9/hook" in out and "customer.created,order.recorded" in out
    assert "enabled" in out and secret not in out  # shown once, at add

    assert run(capsys, "disable", str(endpoint))[0] == 0
    assert "disabled (disabled by the operator)" in run(capsys, "list")[1]
    assert run(capsys, "enable", str(endpoint))[0] == 0

    path = env_db.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, event_type, ordered, body, state, attempts, created_at,"
            " next_attempt_at, delivered_at, last_status) VALUES (?, 'customer.created', 0, '{}', 'delivered', 1,"
            " '2026-11-23 10:00:00.000000', '2026-11-23 10:00:00.000000', '2026-11-23 10:00:01.000000', 204)",
            (endpoint,),
        )
        delivery = db.execute("SELECT max(id) FROM webhook_deliveries").fetchone()[0]
    code, out, _ = run(capsys, "deliveries", str(endpoint), "--limit", "5")
    assert code == 0 and f"msg_{delivery}" in out and "delivered" in out
    code, out, _ = run(capsys, "replay", str(delivery))
    assert code == 0 and f"webhook-id msg_{delivery}" in out
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state FROM webhook_deliveries WHERE id = ?", (delivery,)).fetchone() == ("pending",)

    code, out, _ = run(capsys, "remove", str(endpoint))
    assert code == 0 and "removed with 1 deliveries" in out
    assert "no webhook endpoints" in run(capsys, "list")[1]


def test_webhooks_cli_refuses_what_it_cannot_do(
    env_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "disable", "42")[:1] == (2,)
    code, _, err = run(capsys, "add", "http://127.0.0.1:9/hook", "--events", "no.such_event")
    assert code == 2 and "unknown event" in err
    monkeypatch.setenv("SIYU_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "false")
    code, _, err = run(capsys, "add", "http://127.0.0.1:9/hook", "--events", "*")
    assert code == 2 and "loopback" in err and "allow_private_targets" in err
    code, _, err = run(capsys, "replay", "7")
    assert code == 2 and "no webhook delivery 7" in err
