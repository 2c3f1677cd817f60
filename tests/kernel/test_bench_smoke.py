"""The benchmarks still run against today's code (tiny sizes, SQLite): a benchmark that no longer imports or
whose fake services drifted from the real ones is found here, not on the day someone needs the numbers.
Nothing here is timed; the numbers themselves live in bench/RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        (
            "draws.py",
            ("--dbs", "sqlite", "--draws", "60", "--warmup", "10", "--keyword-draws", "20",
             "--targets", "draw-hot,batched-hot,paced-keyword"),
            "verify OK",
        ),
        ("sop.py", ("--phases", "enrol", "--backends", "sqlite", "--enrol", "200", "--per-txn", "50"), "enrol()"),
    ],
)  # fmt: skip
def test_a_benchmark_runs_on_todays_code(script: str, args: tuple[str, ...], expected: str) -> None:
    out = run(script, *args)
    assert expected in out and "FAIL" not in out
