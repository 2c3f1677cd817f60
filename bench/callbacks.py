"""Benchmark the durable callback path against a bare aiohttp handler, in one run.

    .venv/bin/python bench/callbacks.py [--duration 15 --connections 200 --pg-url URL --write]

What runs (each server is ONE process started by ``bench/serve_bench.py``, pinned to CPU 1 while
wrk is pinned to CPU 0 unless ``--no-pin``):

* ``bare``               aiohttp, one POST route answering "success" (the ceiling);
* ``sqlite``/``postgres``  ``bot.app.build_app(settings, features(), routers=[])``: signature check → decrypt →
                         parse → receipt INSERT committed → ack (intake only);
* ``sqlite+handlers``/``postgres+handlers``  the same with the default handler routers.

The load comes from ``wrk`` (C, epoll) with ``bench/callbacks.lua``, replaying N pre-generated,
distinct, signed and encrypted ``change_external_contact/add_external_contact`` callbacks (one
ExternalUserID each, so every request must insert a receipt). After each run the receipts in the
database are counted and checked against what wrk sent and what came back 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from common import (  # noqa: E402
    RESULTS,
    command_line,
    machine_busy_seconds,
    machine_lines,
    pg_execute,
    prepare_db,
    utc_stamp,
    write_results,
)
from serve_bench import WECOM_AES, WECOM_CORP, WECOM_PATH, WECOM_TOKEN  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench"
TARGETS = ("bare", "sqlite", "postgres", "sqlite+handlers", "postgres+handlers")
START, END = "<!-- bench:callbacks:start -->", "<!-- bench:callbacks:end -->"
TARGET_RATIO = {"sqlite": 0.20, "postgres": 0.15}
P99_LIMIT_MS = 50.0
PACKAGES = ("aiohttp", "SQLAlchemy", "aiosqlite", "asyncpg", "wechatpy", "xmltodict", "cryptography")
RESULTS_TITLE = "# Callback benchmark results"


# --- request corpus ---------------------------------------------------------------------------


def generate_corpus(prefix: Path, total: int, threads: int) -> None:
    """Write ``total`` distinct callbacks, split round-robin into one file per wrk thread."""
    from bot.wechat import EnvelopeCrypto, render_xml

    crypto = EnvelopeCrypto(WECOM_TOKEN, WECOM_AES, WECOM_CORP, work=True)
    now = int(time.time())
    files = [open(f"{prefix}.{i + 1}.txt", "w", encoding="utf-8") for i in range(threads)]  # noqa: SIM115
    try:
        for n in range(total):
            plaintext = render_xml(
                {
                    "ToUserName": WECOM_CORP,
                    "FromUserName": "sys",
                    "CreateTime": now,
                    "MsgType": "event",
                    "Event": "change_external_contact",
                    "ChangeType": "add_external_contact",
                    "UserID": f"staff{n % 50:02d}",
                    "ExternalUserID": f"wmBench{n:09d}",
                    "State": "bench",
                    "WelcomeCode": f"WELCOME{n:09d}",
                }
            )
            ts, nonce = str(now), str(1_000_000_000 + n)
            enc = crypto.encrypt(plaintext)
            body = render_xml({"ToUserName": WECOM_CORP, "Encrypt": enc, "AgentID": "1000002"})
            query = f"msg_signature={crypto.sign(ts, nonce, enc)}&timestamp={ts}&nonce={nonce}"
            files[n % threads].write(f"{WECOM_PATH}?{query}\t{body}\n")
    finally:
        for fh in files:
            fh.close()


# --- servers and databases --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def count_receipts(url: str) -> dict[str, int]:
    sql_total = "SELECT count(*) FROM receipts"
    sql_keys = "SELECT count(DISTINCT dedup_key) FROM receipts"
    sql_pending = "SELECT count(*) FROM receipts WHERE status = 'pending'"
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.split(":///", 1)[1])) as db:
            vals = [db.execute(q).fetchone()[0] for q in (sql_total, sql_keys, sql_pending)]
    else:
        vals = asyncio.run(pg_execute(url, sql_total, sql_keys, sql_pending))
    return {"rows": int(vals[0]), "distinct_keys": int(vals[1]), "pending": int(vals[2])}


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited at start:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if http_get(self.port, "/healthz", timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} server did not become healthy in 60 s:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads) so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGINT)  # graceful: aiohttp stops intake, then cleanup contexts
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    data: dict[str, Any]
    wall: float
    cpu: float  # wrk's own user+system CPU seconds
    output: str

    @property
    def non2xx(self) -> int:
        return int(self.data["errors"]["status"])

    @property
    def socket_errors(self) -> int:
        e = self.data["errors"]
        return int(e["connect"] + e["read"] + e["write"] + e["timeout"])

    @property
    def ok(self) -> int:
        return int(self.data["requests"]) - self.non2xx


def run_wrk(args: argparse.Namespace, port: int, prefix: Path, offsets: list[int], seconds: float) -> WrkRun:
    argv = [
        *(["taskset", "-c", args.wrk_cpus] if args.pin else []),
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "callbacks.lua"),
        f"http://127.0.0.1:{port}{WECOM_PATH}",
        "--",
        str(prefix),
        ",".join(str(o) for o in offsets),
    ]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{output[-3000:]}")
    return WrkRun(json.loads(line.removeprefix("BENCH_JSON ")), wall, usage.ru_utime + usage.ru_stime, output)


# --- one target ---------------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    non2xx: int = 0
    socket_errors: int = 0
    ok: int = 0  # 2xx in warm-up + measured run
    sent: int = 0  # requests wrk wrote in warm-up + measured run (in-flight ones at the stop included)
    repeats: int = 0  # requests that wrapped around the corpus (deliberate duplicates)
    server_cpu: float = 0.0  # share of one core used by the server process in the measured run
    wrk_cpu: float = 0.0
    other_cpu: float = 0.0  # every other process on the machine (PostgreSQL, kernel, neighbours), in cores
    receipts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    profile: str = ""

    @property
    def stores(self) -> bool:
        return self.target != "bare"

    def receipts_ok(self) -> bool:
        if not self.stores:
            return True
        rows = self.receipts.get("rows", -1)
        expected_max = self.sent - self.repeats
        return (
            self.ok - self.repeats <= rows <= expected_max
            and self.receipts.get("distinct_keys") == rows
            and self.metrics.get("duplicates", 0) <= self.repeats
        )


def parse_metrics(text: str) -> dict[str, float]:
    out = {"stored": 0.0, "duplicates": 0.0, "rejected": 0.0, "store_failed": 0.0}
    for line in text.splitlines():
        m = re.match(r'siyu_callbacks_total\{[^}]*outcome="([^"]+)"[^}]*\}\s+(\S+)', line)
        if not m:
            continue
        outcome, value = m.group(1), float(m.group(2))
        if outcome == "duplicate":
            out["duplicates"] += value
        elif outcome.startswith("rejected"):
            out["rejected"] += value
        elif outcome in out:
            out[outcome] += value
    return out


def run_target(args: argparse.Namespace, target: str, workdir: Path, prefix: Path) -> Result:
    backend, _, extra = target.partition("+")
    port = free_port()
    serve = [sys.executable, str(BENCH / "serve_bench.py")]
    db_url = ""
    if backend == "bare":
        serve += ["bare", "--port", str(port)]
    else:
        db_url = asyncio.run(prepare_db(backend, workdir, args.pg_url, target.replace("+", "_")))
        serve += ["app", "--port", str(port), "--db-url", db_url, *(["--handlers"] if extra else [])]
    if args.pin:
        serve = ["taskset", "-c", args.server_cpus, *serve]
    server = Server(target, serve, port, workdir / f"{target}.log")
    result = Result(target)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        zeros = [0] * args.threads
        warm = run_wrk(args, port, prefix, zeros, args.warmup) if args.warmup > 0 else None
        offsets = [int(p) for p in warm.data["positions"]] if warm else zeros
        if args.profile:
            prof_out = Path(args.profile) / f"{target.replace('+', '_')}.txt"
            profiler = subprocess.Popen(
                [
                    *(["taskset", "-c", args.wrk_cpus] if args.pin else []),
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(server.proc.pid if server.proc else 0),
                    "--duration",
                    str(args.duration),
                    "--rate",
                    "250",
                    *args.profile_args.split(),
                    "--format",
                    "raw",
                    "-o",
                    str(prof_out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            result.profile = str(prof_out)
        cpu0, busy0, t0 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
        run = run_wrk(args, port, prefix, offsets, args.duration)
        elapsed = time.monotonic() - t0
        server_cpu = server.cpu_seconds() - cpu0
        result.server_cpu = server_cpu / elapsed
        result.other_cpu = max(0.0, machine_busy_seconds() - busy0 - server_cpu - run.cpu) / elapsed
        if profiler is not None:
            profiler.wait(timeout=60)
        d, lat = run.data, run.data["latency_us"]
        result.rps = d["requests"] / (d["duration_us"] / 1e6)
        result.p50_ms, result.p90_ms = lat["p50"] / 1e3, lat["p90"] / 1e3
        result.p99_ms, result.max_ms = lat["p99"] / 1e3, lat["max"] / 1e3
        result.wrk_cpu = run.cpu / run.wall
        runs = [r for r in (warm, run) if r is not None]
        result.non2xx = sum(r.non2xx for r in runs)
        result.socket_errors = sum(r.socket_errors for r in runs)
        result.ok = sum(r.ok for r in runs)
        result.sent = sum(int(r.data["sent"]) for r in runs)
        result.repeats = sum(int(r.data["repeats"]) for r in runs)
        if result.stores:
            time.sleep(1.0)  # requests that were in flight when wrk stopped finish their commit
            status, text = http_get(port, "/metrics", timeout=30)
            if status == 200:
                result.metrics = parse_metrics(text)
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
            profiler.wait(timeout=10)
        server.stop()
    if db_url:
        result.receipts = count_receipts(db_url)
    return result


# --- report -------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    bare = next((r for r in results if r.target == "bare"), None)
    lines = [
        "| target | req/s | p50 ms | p99 ms | max ms | non-2xx | sock err | 2xx (warm-up + run) | wrk sent "
        "| receipts stored | dedup hits | vs bare | server CPU | wrk CPU | other CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        ratio = f"{r.rps / bare.rps:.1%}" if bare and bare.rps else "-"
        stored = "-" if not r.stores else f"{r.receipts.get('rows', '?')}" + ("" if r.receipts_ok() else " ⚠")
        dedup = "-" if not r.stores else f"{int(r.metrics.get('duplicates', 0))} ({r.repeats} repeated)"
        lines.append(
            f"| {r.target} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.0f} | {r.non2xx} "
            f"| {r.socket_errors} | {r.ok:,} | {r.sent:,} | {stored} | {dedup} | {ratio} "
            f"| {r.server_cpu:.0%} | {r.wrk_cpu:.0%} | {r.other_cpu:.0%} |"
        )
    return "\n".join(lines)


def verdicts(results: list[Result]) -> list[str]:
    bare = next((r for r in results if r.target == "bare"), None)
    out = []
    for r in results:
        if r.target in TARGET_RATIO and bare:
            ratio = r.rps / bare.rps
            need = TARGET_RATIO[r.target]
            ok = ratio >= need and r.p99_ms < P99_LIMIT_MS
            out.append(
                f"- {r.target}: {ratio:.1%} of bare (target ≥ {need:.0%}), p99 {r.p99_ms:.1f} ms "
                f"(target < {P99_LIMIT_MS:.0f} ms) → **{'PASS' if ok else 'MISS'}**"
            )
        if r.stores and not r.receipts_ok():
            out.append(
                f"- {r.target}: receipts check FAILED: rows={r.receipts}, 2xx={r.ok}, sent={r.sent}, "
                f"repeats={r.repeats}, metrics={r.metrics}"
            )
        if r.non2xx or r.socket_errors:
            out.append(f"- {r.target}: {r.non2xx} non-2xx responses, {r.socket_errors} socket errors")
    return out


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine(args: argparse.Namespace, targets: list[str]) -> list[str]:
    pg_url = args.pg_url if any(t.startswith("postgres") for t in targets) else None
    return [*machine_lines(PACKAGES, pg_url), f"- load generator: {_version(['wrk', '--version'])}"]


def render_section(args: argparse.Namespace, results: list[Result], argv: list[str], targets: list[str]) -> str:
    pin = (
        f"server pinned to CPU {args.server_cpus}, wrk to CPU {args.wrk_cpus} (`taskset`); PostgreSQL unpinned"
        if args.pin
        else "no CPU pinning"
    )
    cmd = command_line("bench/callbacks.py", argv)
    return "\n".join(
        [
            START,
            f"## Run of {utc_stamp()}",
            "",
            f"Command: `{cmd}`",
            "",
            *machine(args, targets),
            f"- settings: {args.connections} connections, {args.threads} wrk thread(s), {args.warmup:g} s warm-up "
            f"then {args.duration} s measured, {args.requests:,} distinct callbacks generated; {pin}",
            "",
            "CPU columns are shares of one core during the measured run; *other* is everything else on the",
            "machine (PostgreSQL, kernel, and any neighbour sharing these cores — high values on `bare`/`sqlite`",
            "mean the run was disturbed).",
            "",
            table(results),
            "",
            *verdicts(results),
            END,
        ]
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=15, help="measured seconds per target (default 15)")
    p.add_argument("--connections", type=int, default=200, help="concurrent connections (default 200)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds per target (default 3)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: one core is plenty)")
    p.add_argument("--requests", type=int, default=300_000, help="distinct callbacks to generate (default 300000)")
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL URL, schema is reset (default {DEFAULT_PG})")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma list from {','.join(TARGETS)}")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server and wrk with taskset")
    p.add_argument("--server-cpus", default="1", help="taskset CPU list for the server (default 1)")
    p.add_argument("--wrk-cpus", default="0", help="taskset CPU list for wrk (default 0)")
    p.add_argument("--profile", metavar="DIR", help="record py-spy raw stacks of each server into DIR")
    p.add_argument(
        "--profile-args",
        default="--threads --nonblocking",
        help="extra py-spy record flags (default '--threads --nonblocking'; add --gil or --idle to taste)",
    )
    p.add_argument("--write", action="store_true", help=f"replace the results section in {RESULTS.name}")
    args = p.parse_args(argv)
    if args.connections < args.threads:
        p.error("--connections must be at least --threads")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(f"unknown target(s): {', '.join(unknown)}; choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print(
            "error: wrk is not installed; it drives the load (a Python client would be the bottleneck).\n"
            "       install it with: apt-get update && apt-get install -y wrk",
            file=sys.stderr,
        )
        return 2
    if args.pin and shutil.which("taskset") is None:
        print("error: taskset (util-linux) is missing; install it or pass --no-pin", file=sys.stderr)
        return 2
    if args.profile:
        if not (Path(sys.executable).parent / "py-spy").exists():
            print("error: --profile needs py-spy in the venv: .venv/bin/pip install py-spy", file=sys.stderr)
            return 2
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as tmp:
        workdir = Path(tmp)
        prefix = workdir / "callbacks"
        t0 = time.monotonic()
        generate_corpus(prefix, args.requests, args.threads)
        print(f"generated {args.requests:,} distinct callbacks in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        for target in targets:
            print(f"--- {target}", file=sys.stderr)
            result = run_target(args, target, workdir, prefix)
            print(
                f"    {result.rps:,.0f} req/s  p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms  "
                f"non-2xx {result.non2xx}  receipts {result.receipts.get('rows', '-')}",
                file=sys.stderr,
            )
            results.append(result)
    section = render_section(args, results, argv, targets)
    print(section)
    if args.write:
        write_results(section, START, END, title=RESULTS_TITLE)
        print(f"wrote {RESULTS}", file=sys.stderr)
    bad = [r for r in results if r.non2xx or not r.receipts_ok()]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
