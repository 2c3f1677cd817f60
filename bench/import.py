"""``siyu-bot import`` on a large account: time, throughput and peak memory (issue 11).

    .venv/bin/python bench/import.py [--backends sqlite,postgres] [--customers 10000,100000] [--groups 2000]
                                     [--members 10] [--staff 50] [--pg-url URL] [--write]

The simulator (in this process) is seeded directly — ``--customers`` WeCom customers spread over
``--staff`` follow users (a third of them with a corp tag, a quarter with a known channel ``state``, a
tenth with a ``unionid``) and ``--groups`` customer groups with ``--members`` customers each — and
``siyu-bot import`` runs against it in a **child process** on a fresh, migrated database, exactly as an
operator runs it (the child wraps ``handlers.main(["import"])`` to print its own wall time and peak RSS,
``VmHWM`` of ``/proc/self/status``; not ``getrusage(RUSAGE_SELF).ru_maxrss``, which Linux carries over
``execve`` from the forked parent — this process, holding the seeded simulator — so it grew with the
account without the import using any of it). The RSS is also sampled every 0.1 s. Each account size
runs on each backend, so the peak RSS at two sizes says whether memory grows with the account.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from common import command_line, load_average, machine_lines, prepare_db, utc_stamp, write_results  # noqa: E402

START, END = "<!-- bench:import:start -->", "<!-- bench:import:end -->"
CHILD = """
import os, sys, time
from handlers import main
t0 = time.perf_counter()
if os.environ.get("BENCH_PROFILE"):
    import cProfile
    with cProfile.Profile() as prof:
        code = main(["import"])
    prof.dump_stats(os.environ["BENCH_PROFILE"])
else:
    code = main(["import"])
elapsed = time.perf_counter() - t0
with open("/proc/self/status") as status:
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print(f"BENCH code={code} seconds={elapsed:.2f} peak_rss_kb={peak}")
"""
KNOWN_STATES = ("pkgcard", "live_0611", "store_sh01")


def seed(state: object, customers: int, groups: int, members: int, staff: int) -> None:
    """The account, straight into the simulator's state (no HTTP): customers, corp tags, groups."""
    from bot.simulator.models import GroupMember

    st = state  # SimState
    tags = [st.add_corp_tag("等级", name).id for name in ("VIP", "新客", "老客")]  # type: ignore[attr-defined]
    users = [f"staff{i:03d}" for i in range(staff)]
    ids = [f"wmBench{i:07d}" for i in range(customers)]
    for i, ext in enumerate(ids):
        code = KNOWN_STATES[i % 3] if i % 4 == 0 else (f"old_{i % 7}" if i % 4 == 1 else None)
        contact = st.add_contact(  # type: ignore[attr-defined]
            users[i % staff], ext, state=code, name=f"客户{i}", unionid=f"unBench{i:07d}" if i % 10 == 0 else None
        )
        if i % 3 == 0:
            contact.follow[users[i % staff]].tag_ids = [tags[i % len(tags)]]
    for g in range(groups):
        group = st.add_group(users[g % staff], f"老客群{g}", chat_id=f"wrBench{g:05d}")  # type: ignore[attr-defined]
        for m in range(members):
            ext = ids[(g * members + m) % customers]
            group.members[ext] = GroupMember(
                ext, 2, 1_700_000_000 + m, 1 + m % 3, state="group_fans" if m % 2 else None
            )


def child_env(url: str, wecom_base: str) -> dict[str, str]:
    from bot.simulator import SimAccounts

    acc = SimAccounts()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}  # BENCH_PROFILE=file: cProfile
    env.update(
        PYTHONPATH=str(ROOT),
        SIYU_DATABASE_URL=url,
        SIYU_CONTENT_DIR=str(ROOT / "content"),
        SIYU_WECOM_CORP_ID=acc.corp_id,
        SIYU_WECOM_SECRET=acc.corp_secret,
        SIYU_WECOM_AGENT_ID=str(acc.agent_id),
        SIYU_WECOM_API_BASE_URL=wecom_base,
    )
    return env


async def sample_rss(pid: int, every: float = 0.1) -> list[int]:
    """The child's resident set (KiB, /proc/PID/status VmRSS) every ``every`` seconds until it exits."""
    samples: list[int] = []
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            text = await asyncio.to_thread(status.read_text)
        except OSError:
            return samples
        found = re.search(r"VmRSS:\s+(\d+) kB", text)
        if found is None:  # a zombie: exited
            return samples
        samples.append(int(found.group(1)))
        await asyncio.sleep(every)


def rss_curve(samples: list[int]) -> str:
    """RSS (MiB) at a quarter, half, three quarters and the end of the run."""
    if not samples:
        return "-"
    picks = [samples[min(len(samples) - 1, int(len(samples) * q))] for q in (0.25, 0.5, 0.75)] + [samples[-1]]
    return " / ".join(f"{kib / 1024:.0f}" for kib in picks)


async def run_one(args: argparse.Namespace, backend: str, customers: int, workdir: Path) -> str:
    from bot.simulator import SimAccounts, SimState, start_simulator

    state = SimState(accounts=SimAccounts(), seed=11)
    t0 = time.perf_counter()
    seed(state, customers, args.groups, args.members, args.staff)
    seeded = time.perf_counter() - t0
    sim = await start_simulator(state, "127.0.0.1", 0)
    try:
        url = await prepare_db(backend, workdir, args.pg_url, f"import_{customers}")
        load0 = load_average()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, cwd=str(workdir), env=child_env(url, sim.wecom_api_base),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        sampler = asyncio.create_task(sample_rss(proc.pid))
        out, _ = await proc.communicate()
        samples = await sampler
    finally:
        await sim.close()
    text = out.decode()
    found = re.search(r"BENCH code=(\d+) seconds=([\d.]+) peak_rss_kb=(\d+)", text)
    if found is None or found.group(1) != "0":
        print(text[-3000:], file=sys.stderr)
        raise SystemExit(f"the import failed on {backend} with {customers} customers")
    seconds, rss_mb = float(found.group(2)), int(found.group(3)) / 1024
    made = re.search(r"customers: (\d+) new", text)
    groups = re.search(r"groups: (\d+) new, \d+ already known; (\d+) new members", text)
    calls = len(state.calls)
    line = (
        f"| {backend} | {customers:,} customers, {args.groups:,} groups × {args.members} | {seconds:.1f} s | "
        f"{customers / seconds:,.0f} customers/s | {rss_mb:.0f} MiB | {rss_curve(samples)} | "
        f"{made.group(1) if made else '?'} customers, {groups.group(1) if groups else '?'} groups, "
        f"{groups.group(2) if groups else '?'} members; {calls:,} API calls | {load0} → {load_average()} |"
    )
    print(line, f"(simulator seeded in {seeded:.1f} s)", flush=True)
    return line


async def run(args: argparse.Namespace, workdir: Path) -> list[str]:
    lines = []
    for backend in args.backends.split(","):
        for customers in (int(n) for n in args.customers.split(",")):
            lines.append(await run_one(args, backend, customers, workdir))
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--customers", default="10000,100000", help="account sizes, comma-separated")
    p.add_argument("--groups", type=int, default=2000)
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--staff", type=int, default=50)
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench")
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = asyncio.run(run(args, Path(tmp)))
    if args.write:
        section = "\n".join(
            [
                START,
                f"## Import (issue 11), run of {utc_stamp()}",
                "",
                f"Command: `{command_line('bench/import.py', sys.argv[1:])}`",
                "",
                *machine_lines(["aiohttp", "SQLAlchemy"], args.pg_url if "postgres" in args.backends else None),
                "- `siyu-bot import` in a child process against the simulator (seeded in memory in the bench "
                "process); time and peak RSS are the child's own",
                "",
                "| backend | account | time | throughput | peak RSS | RSS at ¼ / ½ / ¾ / end (MiB) | imported | load |",
                "|---|---|--:|--:|--:|--:|---|---|",
                *lines,
                END,
            ]
        )
        write_results(section, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
