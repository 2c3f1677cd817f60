"""Redis and PostgreSQL going away under a running ``siyu-bot serve`` (shipped defaults), through a TCP proxy.

* Redis black-holed (connections hang, nothing answers) for 10 s while customers arrive, on a fresh
  process whose access token is only in Redis: every welcome still goes out, once.
* PostgreSQL dropped (connections reset, new ones refused) or black-holed for a few seconds during a
  burst: callbacks that cannot be stored are not acknowledged (503 or no answer), WeChat retries them,
  and every welcome goes out once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import scenarios
from tests.faults.scenarios import N

pytestmark = [pytest.mark.faults, pytest.mark.slow]


async def test_redis_black_holed_for_10_s_while_customers_arrive(tmp_path: Path, redis_url: str) -> None:
    result = await scenarios.redis_black_hole(tmp_path, redis_url, n=100, seconds=10.0)
    print(result.summary())
    assert result.acked == 100
    assert (result.delivered, result.duplicates) == (100, 0), result.summary()


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["drop", "cut"])
async def test_postgres_gone_for_3_s_mid_burst(tmp_path: Path, pg_url: str, mode: str) -> None:
    result = await scenarios.postgres_outage(tmp_path, pg_url, mode, seconds=3.0)
    print(result.summary())
    assert result.acked == N, "a callback never acknowledged: WeChat gave up on it"
    if mode == "drop":  # refused connections fail fast: the bot answers 503 and WeChat retries
        assert result.callback_answers.get("503", 0) > 0, result.callback_answers
    assert (result.delivered, result.duplicates) == (N, 0), result.summary()
