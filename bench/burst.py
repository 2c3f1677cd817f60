"""Burst: new friends at a fixed rate against a real ``siyu-bot serve`` — acks, welcomes, events handled.

    .venv/bin/python bench/burst.py [--rate 200 --seconds 10 --targets bare,sqlite,postgres \
        --pg-url URL --write]
    .venv/bin/python bench/burst.py --rate 100 --seconds 600 --targets sqlite   # a 10-minute memory soak
    .venv/bin/python bench/burst.py --targets postgres --workers 1,2 --rate 2000 --seconds 5  # serve --workers

A live-stream night on one small server: ``--rate`` new WeCom friends a second for ``--seconds``, each a
signed, encrypted ``add_external_contact`` callback with a fresh 20-second WelcomeCode, pushed **open
loop** at that fixed rate (a late answer does not slow the next push, unlike wrk's closed loop) by the
simulated WeChat, which runs in this process — a different process from the bot. The bot is a real
``siyu-bot serve`` child process on the shipped defaults (``tests/faults/harness.py``: only URLs, keys,
port and database differ), migrated and ``content sync``-ed first, every handler on.

Per target:

* ``bare``: an aiohttp app answering "success" to the same pushes (``bench/serve_bench.py bare``): the
  ack latency of doing nothing, measured in the same run.
* ``sqlite`` / ``postgres``: the bot; ``postgres ×N`` is ``serve --workers N`` (``--workers 1,2`` runs the
  PostgreSQL target once per count, in the same run; CPU and RSS are the master's and its workers' sum). Reported:
  - **ack**: each push's first attempt, request sent → HTTP answer (p50/p99/max), and how many were not
    answered 200 within WeChat's 5 s (WeChat would retry those);
  - **welcome**: receipt stored (``receipts.received_at``) → the simulator's record of the
    ``send_welcome_msg`` call with that customer's code (p50/p99/max), and push → welcome;
  - **handled**: receipts per second from the first received to the last finished (all handlers
    committed), once every receipt is finished (the bench waits up to 240 s after the last push: the
    handlers catch up after a burst, welcomes go first), and how long after the last push that was.

Gates (the run fails when broken): welcomes delivered = customers, duplicates = 0, receipts = customers.
PostgreSQL resets the ``public`` schema of ``--pg-url``: give it a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from common import RESULTS, command_line, machine_lines, pct, utc_stamp, write_results  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bot.db.models import Receipt  # noqa: E402
from tests.faults.harness import WELCOME_API, BotProcess, FaultHarness, free_port  # noqa: E402
from tests.faults.scenarios import workers_registered  # noqa: E402

DRAIN = 240.0  # seconds after the last push to wait for the handlers to finish every receipt
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench_burst"
START, END = "<!-- bench:burst:start -->", "<!-- bench:burst:end -->"
# a run comparing serve --workers counts has a section of its own (the plain burst's stays)
WORKERS_START, WORKERS_END = "<!-- bench:burst-workers:start -->", "<!-- bench:burst-workers:end -->"
WECHAT_TIMEOUT = 5.0


@dataclass
class BurstResult:
    target: str
    customers: int
    rate: float
    ack_ms: list[float] = field(default_factory=list)
    not_acked_in_5s: int = 0
    welcome_ms: list[float] = field(default_factory=list)  # receipt → send_welcome_msg
    push_to_welcome_ms: list[float] = field(default_factory=list)
    delivered: int = 0
    duplicates: int = 0
    receipts: int = 0
    handled_per_s: float | None = None
    pending_after_10s: int | None = None
    all_handled_s: float | None = None  # last push → no friend_added receipt pending (None: not within DRAIN)
    cpu: str = ""
    rss_mb: str = ""
    gates: list[str] = field(default_factory=list)
    workers: int = 1


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{pct(values, 50):.0f} / {pct(values, 99):.0f} / {max(values):.0f}"


async def _pg_reset(url: str) -> None:
    from sqlalchemy import text

    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def _tree_stats(bot: BotProcess) -> tuple[float, float]:
    """CPU seconds so far and resident MB of ``bot`` and its live children (``serve --workers``)."""
    cpu = rss = 0.0
    for pid in [bot.proc.pid, *bot.children()]:
        with contextlib.suppress(OSError):
            c, r = _proc_stats(pid)
            cpu, rss = cpu + c, rss + r
    return cpu, rss


def _proc_stats(pid: int) -> tuple[float, float]:
    """CPU seconds used so far and resident MB of ``pid`` (and its children's CPU)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks
    rss_pages = int(fields[21])
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run_bare(work: Path, rate: float, seconds: float) -> BurstResult:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "serve_bench.py"), "bare", "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with FaultHarness(work, "sqlite+aiosqlite:///unused") as h:
            url = f"http://127.0.0.1:{port}/callback/wecom"
            for _ in range(100):
                try:
                    assert h._http is not None
                    async with h._http.post(url, data=b"x") as r:
                        await r.read()
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            sim = h.simulator_for(url)
            n = int(rate * seconds)
            burst = await h.burst(sim, n, rate)
            added = await burst.added()
            result = BurstResult("bare", n, rate)
            for friend in added:
                first = friend.delivery.attempts[0]
                result.ack_ms.append(first.seconds * 1000)
                if first.status != 200 or first.seconds > WECHAT_TIMEOUT:
                    result.not_acked_in_5s += 1
            return result
    finally:
        proc.terminate()
        await proc.wait()


async def run_bot(work: Path, target: str, db_url: str, rate: float, seconds: float, workers: int = 1) -> BurstResult:
    if db_url.startswith("postgresql"):
        await _pg_reset(db_url)
    async with FaultHarness(work, db_url) as h:
        await h.prepare()
        bot = await h.spawn("burst", serve_args=["--workers", str(workers)] if workers > 1 else [])
        if workers > 1:
            await workers_registered(bot, db_url, workers)
        cpu0, rss0 = _tree_stats(bot)
        sim = h.simulator_for(bot)
        n = int(rate * seconds)
        t0 = time.monotonic()
        burst = await h.burst(sim, n, rate)
        added = await burst.added()
        pushed_at = time.monotonic()
        result = BurstResult(target if workers == 1 else f"{target} ×{workers}", n, rate, workers=workers)
        for friend in added:
            first = friend.delivery.attempts[0]
            result.ack_ms.append(first.seconds * 1000)
            if first.status != 200 or first.seconds > WECHAT_TIMEOUT:
                result.not_acked_in_5s += 1
        fault = await h.settle(burst, target)
        result.delivered, result.duplicates = fault.delivered, fault.duplicates
        cpu1, rss = _tree_stats(bot)
        wall = time.monotonic() - t0
        result.cpu = f"{(cpu1 - cpu0) / wall:.0%}"
        result.rss_mb = f"{rss0:.0f} → {rss:.0f}"
        await _welcome_and_handled(h, db_url, burst.codes, result, pushed_at)
    n = result.customers
    if result.delivered != n:
        result.gates.append(f"welcomes {result.delivered} != customers {n}")
    if result.duplicates:
        result.gates.append(f"{result.duplicates} duplicate welcomes")
    if result.receipts != n:
        result.gates.append(f"receipts {result.receipts} != customers {n}")
    return result


async def _welcome_and_handled(
    h: FaultHarness, db_url: str, codes: list[str], result: BurstResult, pushed_at: float
) -> None:
    calls: dict[str, datetime] = {}
    for call in h.state.calls_to(WELCOME_API):
        code = (call.body or {}).get("welcome_code")
        if call.errcode == 0 and code not in calls:
            calls[code] = call.at
    issued = {c: h.state.welcome_codes[c].issued_at for c in codes}
    engine = create_async_engine(db_url, poolclass=NullPool)
    try:
        while time.monotonic() - pushed_at < DRAIN:  # the handlers catch up after the burst: wait for them
            async with engine.connect() as conn:
                left = await conn.scalar(
                    select(func.count()).where(Receipt.kind == "friend_added", Receipt.status == "pending")
                )
            if not left:
                result.all_handled_s = time.monotonic() - pushed_at
                break
            await asyncio.sleep(0.5)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Receipt.received_at, Receipt.finished_at, Receipt.status, Receipt.payload).where(
                        Receipt.kind == "friend_added"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    result.receipts = len(rows)
    received = [r.received_at for r in rows]
    finished = [r.finished_at for r in rows if r.finished_at is not None]
    if received and finished:
        span = (max(finished) - min(received)).total_seconds()
        result.handled_per_s = len(finished) / span if span > 0 else None
    result.pending_after_10s = sum(1 for r in rows if r.status != "done")
    for r in rows:
        code = (r.payload or {}).get("WelcomeCode")
        if code in calls:
            result.welcome_ms.append((calls[code] - r.received_at).total_seconds() * 1000)
    for code, at in calls.items():
        if code in issued:
            result.push_to_welcome_ms.append((at - issued[code]).total_seconds() * 1000)


def table(results: list[BurstResult]) -> str:
    lines = [
        "| target | customers at /s | ack p50 / p99 / max ms | not acked in 5 s | receipt → welcome p50 / p99 / max ms "
        "| push → welcome p99 ms | welcomes / duplicates | receipts | handled /s (all handled after the last push) "
        "| bot CPU | bot RSS MB start → end "
        "| gates |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in results:
        handled = "-" if r.handled_per_s is None else f"{r.handled_per_s:,.0f}"
        if r.target != "bare":
            done = r.all_handled_s
            handled += f" (all {done:.0f} s)" if done is not None else f" (not all in {DRAIN:.0f} s)"
        p2w = f"{pct(r.push_to_welcome_ms, 99):.0f}" if r.push_to_welcome_ms else "-"
        wel = "-" if r.target == "bare" else f"{r.delivered} / {r.duplicates}"
        rec = "-" if r.target == "bare" else str(r.receipts)
        gates = "; ".join(r.gates) or ("OK" if r.target != "bare" else "-")
        lines.append(
            f"| {r.target} | {r.customers} at {r.rate:g} | {_ms(r.ack_ms)} | {r.not_acked_in_5s} | {_ms(r.welcome_ms)} "
            f"| {p2w} | {wel} | {rec} | {handled} | {r.cpu or '-'} | {r.rss_mb or '-'} | {gates} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[BurstResult]:
    results: list[BurstResult] = []
    for target in args.targets:
        work = Path(tempfile.mkdtemp(prefix=f"burst-{target}-"))
        try:
            if target == "bare":
                results.append(await run_bare(work, args.rate, args.seconds))
            elif target == "sqlite":
                url = f"sqlite+aiosqlite:///{work / 'siyu.db'}"
                results.append(await run_bot(work, target, url, args.rate, args.seconds))
            else:
                for workers in args.workers:  # the same burst against serve --workers 1, 2, …
                    results.append(await run_bot(work, target, args.pg_url, args.rate, args.seconds, workers))
                    print(table(results[-1:]).splitlines()[-1], flush=True)
                continue
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(table(results[-1:]).splitlines()[-1], flush=True)
    return results


def _workers_note(workers: list[int]) -> list[str]:
    if len(workers) < 2:
        return []
    return [
        "",
        "`postgres ×N` is `siyu-bot serve --workers N` (gunicorn, one port); handled /s = friend_added receipts "
        "finished ÷ (last finished − first received). The simulated WeChat (pushes and API) runs in the bench "
        "process on the same machine.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--targets", default="bare,sqlite,postgres")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument(
        "--workers", default="1", help="PostgreSQL: serve --workers counts to run, comma separated (e.g. 1,2)"
    )
    parser.add_argument("--write", action="store_true", help=f"replace the burst section of {RESULTS.name}")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    results = asyncio.run(main_async(args))
    text = table(results)
    print(text)
    if args.write:
        start, end = (WORKERS_START, WORKERS_END) if len(args.workers) > 1 else (START, END)
        title = "serve --workers " + ", ".join(map(str, args.workers)) if len(args.workers) > 1 else "new friends"
        section = "\n".join(
            [
                start,
                f"## Burst: {title} at a fixed rate, run of {utc_stamp()}",
                "",
                f"Command: `{command_line('bench/burst.py', argv)}`",
                "",
                *machine_lines(("aiohttp", "SQLAlchemy", "aiosqlite", "asyncpg"), args.pg_url, load=True),
                "",
                text,
                *_workers_note(args.workers),
                end,
            ]
        )
        write_results(section, start, end)
    return 1 if any(r.gates for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
