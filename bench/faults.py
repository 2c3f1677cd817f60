"""Fault suite as a benchmark: welcomes delivered (and lost, and duplicated) under crashes and outages.

    .venv/bin/python bench/faults.py [--scenarios all] [--pg-url URL] [--redis-url URL] [--write]

Runs the scenarios of ``tests/faults/scenarios.py`` (the same code the fault tests assert on) with real
``siyu-bot serve`` processes on the shipped defaults against the simulated WeChat, and reports what the
simulator recorded:

* ``baseline``: no fault (SQLite) — the harness must deliver every welcome.
* ``kill``: SQLite, 200 new friends at 100/s, ``kill -9`` after 1 s, restarted at once.
* ``replica``: PostgreSQL, two replicas behind a round-robin balancer, one killed after 1 s, not restarted.
* ``redis``: Redis (token cache) black-holed 10 s while 100 customers arrive (SQLite).
* ``pg-drop`` / ``pg-cut``: PostgreSQL connections reset (refused) / black-holed for 3 s mid-burst.

PostgreSQL scenarios reset the ``public`` schema of ``--pg-url``; the Redis scenario flushes the database
of ``--redis-url``. Give them databases of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from common import RESULTS, command_line, machine_lines, utc_stamp, write_results  # noqa: E402

from tests.faults import scenarios  # noqa: E402
from tests.faults.harness import FaultResult  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench_faults"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
START, END = "<!-- bench:faults:start -->", "<!-- bench:faults:end -->"
NAMES = ("baseline", "kill", "replica", "redis", "pg-drop", "pg-cut")
PACKAGES = ("aiohttp", "SQLAlchemy", "aiosqlite", "asyncpg", "redis")

Scenario = Callable[[Path, argparse.Namespace], Awaitable[FaultResult]]

SCENARIOS: dict[str, Scenario] = {
    "baseline": lambda w, a: scenarios.baseline(w),
    "kill": lambda w, a: scenarios.kill_and_restart(w),
    "replica": lambda w, a: scenarios.kill_one_replica(w, a.pg_url),
    "redis": lambda w, a: scenarios.redis_black_hole(w, a.redis_url),
    "pg-drop": lambda w, a: scenarios.postgres_outage(w, a.pg_url, "drop"),
    "pg-cut": lambda w, a: scenarios.postgres_outage(w, a.pg_url, "cut"),
}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: list[FaultResult]) -> str:
    lines = [
        "| scenario | customers | welcomes delivered | lost | duplicates | repeats (41051) "
        "| time to recover: first / last welcome s | in flight at the fault | callbacks acked | callback attempts |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in results:
        answers = ", ".join(f"{k}×{v}" for k, v in sorted(r.callback_answers.items()))
        lines.append(
            f"| {r.scenario} | {r.customers} | {r.delivered} | {r.lost} | {r.duplicates} | {r.repeats} "
            f"| {_seconds(r.recover_first_s)} / {_seconds(r.recover_all_s)} "
            f"| {'-' if r.in_flight_at_fault is None else r.in_flight_at_fault} | {r.acked} | {answers} |"
        )
    return "\n".join(lines)


def render_section(args: argparse.Namespace, argv: list[str], results: list[FaultResult]) -> str:
    uses_pg = any(n in ("replica", "pg-drop", "pg-cut") for n in args.names)
    return "\n".join(
        [
            START,
            "## Faults: welcomes under crashes and outages",
            "",
            f"Run of {utc_stamp()}. Command: `{command_line('bench/faults.py', argv)}`",
            "",
            *machine_lines(PACKAGES, args.pg_url if uses_pg else None, load=True),
            "- real `siyu-bot serve` child processes with the shipped defaults (only URLs, keys, port, content",
            "  folder and log level set), the simulated WeChat in the benchmark process; customers arrive through",
            "  `pkgcard`; callbacks are pushed like WeChat's (5-s timeout, 3 retries, paced 3 s apart; with two",
            "  replicas each retry goes to the other one, as behind a round-robin balancer)",
            "",
            "All counts are from the simulator's record: *welcomes delivered* = distinct WelcomeCodes used",
            "successfully (each lives 20 s and works once); *lost* = customers without one; *duplicates* =",
            "customers holding more than one welcome plus successful calls beyond one per code; *repeats* =",
            "`send_welcome_msg` answered 41051 (a repeat of a delivered welcome, harmless). *Time to recover* =",
            "from the restart (SQLite), the kill (surviving replica) or the end of the outage to the first and the",
            "last welcome delivered after it. *In flight at the fault* = callbacks acknowledged whose welcome the",
            "platform had not seen yet when the process was killed or the database cut (the fault waits up to 1 s",
            "for such a moment). *Callback attempts* = answers to every push attempt (`no answer` = refused,",
            "reset or no answer within 5 s).",
            "",
            table(results),
            END,
        ]
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default="all", help=f"comma list from {','.join(NAMES)} (default all)")
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL URL, schema is reset (default {DEFAULT_PG})")
    p.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis URL, database flushed (default {DEFAULT_REDIS})")
    p.add_argument("--write", action="store_true", help=f"replace the faults section in {RESULTS.name}")
    args = p.parse_args(argv)
    names = list(NAMES) if args.scenarios == "all" else [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    args.names = names
    return args


async def run_all(args: argparse.Namespace) -> list[FaultResult]:
    if any(n in ("replica", "pg-drop", "pg-cut") for n in args.names):
        from common import ensure_database

        await ensure_database(args.pg_url)
    results: list[FaultResult] = []
    for name in args.names:
        print(f"--- {name}", file=sys.stderr)
        workdir = Path(tempfile.mkdtemp(prefix=f"siyu-bench-faults-{name}-"))
        try:
            result = await SCENARIOS[name](workdir, args)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"    {result.summary()}", file=sys.stderr)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    results = asyncio.run(run_all(args))
    section = render_section(args, argv, results)
    print(section)
    if args.write:
        write_results(section, START, END)
        print(f"wrote {RESULTS}", file=sys.stderr)
    return 0 if all(r.lost == 0 and r.duplicates == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
