"""``siyu-bot serve --workers 2`` on PostgreSQL: two gunicorn workers on one port, real processes.

Each worker is a full replica (instance row, inbox, dispatcher, sweeper, outbox). A burst of encrypted
new-friend callbacks must be handled exactly once — one committed handler run per receipt, one welcome
per customer in the simulator's record — and ``kill -9`` of one worker mid-burst must lose nothing and
double nothing: its sibling takes its receipts and calls over, gunicorn starts a replacement. SIGHUP to
the master reloads the content in every worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import scenarios
from tests.faults.scenarios import N, WorkersRun

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres]


def _exactly_once(run: WorkersRun) -> None:
    r = run.result
    print(r.summary(), run)
    assert r.acked == N, "callbacks lost on the platform side: the harness, not the bot"
    assert (r.delivered, r.duplicates) == (N, 0), r.summary()
    assert (run.receipts, run.done) == (N, N), run
    assert run.attempts == {1: N}, f"a receipt's handlers committed more than once: {run.attempts}"
    assert run.welcome_calls == N, run


async def test_two_workers_handle_a_burst_exactly_once(tmp_path: Path, pg_url: str) -> None:
    run = await scenarios.workers_burst(tmp_path, pg_url, workers=2)
    _exactly_once(run)
    assert run.owners == 2, "one listening socket, two workers: both should have taken callbacks"
    assert (run.instances, run.workers_after) == (2, 2), run
    assert run.reloaded == 2, "SIGHUP to the master reloads the content in every worker"


async def test_kill_9_of_one_worker_mid_burst_loses_nothing_and_doubles_nothing(tmp_path: Path, pg_url: str) -> None:
    run = await scenarios.workers_burst(tmp_path, pg_url, workers=2, kill_after=scenarios.KILL_AFTER)
    _exactly_once(run)
    assert run.workers_after == 2, "gunicorn starts a replacement for the killed worker"
    assert run.instances == 3, "the replacement registers its own instance row"
