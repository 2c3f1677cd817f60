"""Crashes of real ``siyu-bot serve`` processes during a burst of new WeCom friends (shipped defaults).

Each new friend's WelcomeCode lives 20 s and works once. After ``kill -9`` the callbacks the dead process
had acknowledged (receipts committed, handler or outbox call in flight) must still be welcomed in time —
by the restarted process (SQLite) or by the surviving replica (PostgreSQL) — and nobody twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import scenarios
from tests.faults.scenarios import N

pytestmark = [pytest.mark.faults, pytest.mark.slow]


async def test_baseline_without_a_fault_every_customer_is_welcomed_once(tmp_path: Path) -> None:
    """The harness itself: no fault, every welcome delivered (a failure here is not the bot's crash bug)."""
    result = await scenarios.baseline(tmp_path)
    print(result.summary())
    assert result.acked == N
    assert (result.delivered, result.duplicates) == (N, 0), result.summary()


async def test_sqlite_kill_9_mid_burst_and_restart_welcomes_everyone_once(tmp_path: Path) -> None:
    result = await scenarios.kill_and_restart(tmp_path)
    print(result.summary())
    assert result.acked == N, "callbacks lost on the platform side: the harness, not the bot"
    assert (result.delivered, result.duplicates) == (N, 0), result.summary()


@pytest.mark.postgres
async def test_postgres_replica_killed_the_survivor_takes_over(tmp_path: Path, pg_url: str) -> None:
    result = await scenarios.kill_one_replica(tmp_path, pg_url)
    print(result.summary())
    assert result.acked == N, "callbacks lost on the platform side: the harness, not the bot"
    assert (result.delivered, result.duplicates) == (N, 0), result.summary()
