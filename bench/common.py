"""Pieces shared by the benchmark scripts (``bench/callbacks.py``, ``bench/welcome_latency.py``, ``bench/sop.py``).

Machine CPU load from ``/proc/stat``, percentiles, the benchmark databases (SQLite temp file or a reset
PostgreSQL schema, migrated), the machine/versions lines of a report, and replacing one marked section
of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import re
import sqlite3
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = BENCH / "RESULTS.md"


# --- numbers and CPU -----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with N=50, p99 is the largest value)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle by the whole machine so far (all cores, from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


class CpuMeter:
    """This process's CPU (all threads: event loop, aiosqlite worker) and the rest of the machine
    (PostgreSQL included), in cores since construction."""

    def __init__(self) -> None:
        self.t0, self.proc0, self.busy0 = time.monotonic(), time.process_time(), machine_busy_seconds()

    def read(self) -> tuple[float, float]:
        """(this process, everything else) in cores since construction."""
        elapsed = max(1e-9, time.monotonic() - self.t0)
        proc = time.process_time() - self.proc0
        other = max(0.0, machine_busy_seconds() - self.busy0 - proc)
        return proc / elapsed, other / elapsed

    def text(self) -> str:
        """``read()`` as "this process / everything else" percentages of one core."""
        proc, other = self.read()
        return f"{proc:.0%} / {other:.0%}"


# --- databases -----------------------------------------------------------------------------------


async def pg_execute(url: str, *statements: str) -> list[Any]:
    """Run ``statements`` in one transaction; the first column of each result (None for no rows)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool)
    out: list[Any] = []
    try:
        async with engine.begin() as conn:
            for sql in statements:
                res = await conn.execute(text(sql))
                out.append(res.scalar() if res.returns_rows else None)
    finally:
        await engine.dispose()
    return out


async def ensure_database(url: str) -> None:
    """Create the benchmark database when it is missing (connecting to the server's ``postgres`` db)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    target = make_url(url)
    name = target.database or ""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"--pg-url must name a plain database, got {name!r}")
    admin = create_async_engine(target.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            found = (await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})).scalar()
            if not found:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()


async def prepare_db(backend: str, workdir: Path, pg_url: str, tag: str) -> str:
    """A migrated database: a fresh SQLite file ``workdir/<tag>.db``, or ``pg_url`` with its schema reset."""
    from bot.db.migrate import upgrade

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'{tag}.db'}"
    else:
        url = pg_url
        await ensure_database(url)
        await pg_execute(url, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    await asyncio.to_thread(upgrade, url)
    return url


def make_settings(workdir: Path, url: str) -> Any:
    """The demo settings with the shipped ``content/``, on database ``url``."""
    from bot.config import DatabaseURL
    from handlers.demo.run import demo_settings

    settings = demo_settings(workdir / "unused.db", str(ROOT / "content"))
    return settings.model_copy(update={"database": settings.database.model_copy(update={"url": DatabaseURL(url)})})


# --- report --------------------------------------------------------------------------------------


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line(script: str, argv: list[str]) -> str:
    """How the run was started, e.g. ``.venv/bin/python bench/sop.py --write``."""
    return " ".join([".venv/bin/python", script, *argv])


def machine_lines(packages: Iterable[str], pg_url: str | None, *, load: bool = False) -> list[str]:
    """Report lines: CPUs and kernel, Python and package versions, SQLite and (when ``pg_url`` is given
    and answers) the PostgreSQL server version; with ``load``, the load average now."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pkgs = ", ".join(f"{p} {metadata.version(p)}" for p in packages)
    pg = "-"
    if pg_url is not None:
        with contextlib.suppress(Exception):
            pg = str(asyncio.run(pg_execute(pg_url, "SHOW server_version"))[0])
    first = f"- machine: {os.cpu_count()} CPUs (nproc), {cpu}, {platform.system()} {platform.release()}"
    if load:
        first += f"; load average at the end {load_average()}"
    return [
        first,
        f"- Python {platform.python_version()}; {pkgs}; SQLite {sqlite3.sqlite_version}; PostgreSQL {pg}",
    ]


def write_results(section: str, start: str, end: str, *, title: str = "# Benchmark results") -> None:
    """Replace the part of ``RESULTS.md`` between the ``start`` and ``end`` markers with ``section`` (which
    carries the markers), or append it; everything else in the file is kept."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else f"{title}\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text, encoding="utf-8")
