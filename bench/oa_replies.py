"""Official Account passive replies at campaign rate: siyu-bot against a bare handler and two peers, in one run.

    .venv/bin/python bench/oa_replies.py [--duration 15 --connections 200 --rate 200 --pg-url URL --write]

Targets (each server ONE process or process group, started by ``bench/oa_serve.py``, pinned to CPU 1;
wrk, the fixed-rate pusher and the stand-in WeChat API on CPU 0 unless ``--no-pin``):

* ``bare``      aiohttp: verify + decrypt + parse, a fixed encrypted reply (bot.wechat), nothing stored;
* ``sqlite`` / ``postgres``  siyu-bot: ``bot.app.build_app`` with the default handlers and the shipped
  ``content/`` (receipt committed before the answer, the channel's welcome / the keyword's answer);
* ``sqlite-intake`` / ``postgres-intake``  diagnostic: the same app with the handler transactions
  deferred (receipts stored, replies planned, no handler runs): the reply path's own capacity;
* ``werobot``   WeRoBot's standard deployment, ``werobot.run`` (bottle "auto" server) with its default
  session (SQLiteStorage), a fixed text reply;
* ``flask``     Flask + wechatpy under gunicorn (sync workers, ``--gunicorn-workers``), a fixed text reply.
  (Peers come from the ``bench`` extra: ``pip install -e '.[bench]'``.)

Two messages, each a separate run on the same server: a poster-QR ``subscribe`` (``qrscene_poster_618``,
one new openid per request) and the keyword text ``礼包`` (one MsgId per request). All requests are
pre-generated, distinct, signed and encrypted (safe mode). Per target and message:

1. burst: ``wrk`` with ``bench/oa_replies.lua`` (``--connections``, warm-up then ``--duration`` s); every
   answer is classified (encrypted / "success" / other) and a sample is verified and decrypted here;
2. siyu-bot: the time until every receipt of the burst is handled (pending receipts → 0), up to
   ``--drain-timeout``;
3. fixed rate: ``bench/oa_pace.py`` (a separate process, open loop) sends ``--rate`` messages/s for
   ``--pace-seconds``; every answer is verified and decrypted; latency counts from when each was due.

Afterwards siyu-bot's receipts are counted by kind against what was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from callbacks import free_port, http_get  # noqa: E402
from common import (  # noqa: E402
    RESULTS,
    command_line,
    load_average,
    machine_busy_seconds,
    machine_lines,
    prepare_db,
    utc_stamp,
    write_results,
)
from oa_pace import check_reply, summary_of_content  # noqa: E402
from oa_serve import AES_KEY, APP_ID, ORIGINAL_ID, PATH, TOKEN  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench_oa"
TARGETS = ("bare", "sqlite", "postgres", "werobot", "flask", "sqlite-intake", "postgres-intake")
MESSAGES = ("subscribe", "text")
KIND_OF = {"subscribe": "followed", "text": "text_received"}  # receipt kinds
START, END = "<!-- bench:oa_replies:start -->", "<!-- bench:oa_replies:end -->"
TARGET_RPS = 2000.0
PEER_FACTOR = 3.0  # ≥ 3× WeRoBot's standard deployment
P99_LIMIT_MS = 100.0
DRAIN_LIMIT_S = 10.0
PACKAGES = ("aiohttp", "SQLAlchemy", "aiosqlite", "asyncpg", "wechatpy", "WeRoBot", "bottle", "Flask", "gunicorn")


# --- request corpus ---------------------------------------------------------------------------


def _plaintext(message: str, n: int, now: int) -> tuple[str, str]:
    from bot.wechat import render_xml

    openid = f"oBench{message[:3]}{n:016d}"
    fields: dict[str, Any] = {"ToUserName": ORIGINAL_ID, "FromUserName": openid, "CreateTime": now}
    if message == "subscribe":
        fields |= {"MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_poster_618",
                   "Ticket": f"gQbench{n:012d}"}  # fmt: skip
    else:
        fields |= {"MsgType": "text", "Content": "礼包", "MsgId": 7_000_000_000_000_000_000 + n}
    return render_xml(fields), openid


def generate_corpus(prefix: Path, message: str, total: int, paced: int, threads: int) -> None:
    """``total`` distinct requests round-robin into ``<prefix>.<message>.<i>.txt`` for wrk, and ``paced``
    more (never sent by wrk) into ``<prefix>.<message>.pace.txt`` with the openid as a third column."""
    from bot.wechat import EnvelopeCrypto, render_xml, signature

    crypto = EnvelopeCrypto(TOKEN, AES_KEY, APP_ID, work=False)
    now = int(time.time())
    rng = random.Random(f"{message}-{total}")
    files = [open(f"{prefix}.{message}.{i + 1}.txt", "w", encoding="utf-8") for i in range(threads)]  # noqa: SIM115
    pace = open(f"{prefix}.{message}.pace.txt", "w", encoding="utf-8")  # noqa: SIM115
    try:
        for n in range(total + paced):
            plaintext, openid = _plaintext(message, n, now)
            ts, nonce = str(now), str(rng.randrange(10**9, 10**10))
            enc = crypto.encrypt(plaintext)
            body = render_xml({"ToUserName": ORIGINAL_ID, "Encrypt": enc})
            query = (
                f"signature={signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}&openid={openid}"
                f"&encrypt_type=aes&msg_signature={crypto.sign(ts, nonce, enc)}"
            )
            if n < total:
                files[n % threads].write(f"{PATH}?{query}\t{body}\n")
            else:
                pace.write(f"{PATH}?{query}\t{body}\t{openid}\n")
    finally:
        for fh in [*files, pace]:
            fh.close()


# --- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    log: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                http_get(self.port, "/healthz", timeout=1)  # any HTTP answer: WeRoBot has no health route
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer in 60 s:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process group (gunicorn's workers included) so far."""
        assert self.proc is not None
        total = 0.0
        pgid = self.proc.pid
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:  # field 5 (pgrp) after the comm
                    total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = os.getpgid(self.proc.pid)
        os.killpg(pgid, signal.SIGINT if self.name != "flask" else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def server_argv(args: argparse.Namespace, target: str, port: int, db_url: str, platform_port: int) -> list[str]:
    serve = [sys.executable, str(BENCH / "oa_serve.py")]
    if target == "bare":
        argv = [*serve, "bare", "--port", str(port)]
    elif target.startswith(("sqlite", "postgres")):
        argv = [*serve, "app", "--port", str(port), "--db-url", db_url, "--platform-port", str(platform_port)]
        argv += ["--defer-handlers"] if target.endswith("-intake") else []
    elif target == "werobot":
        argv = [*serve, "werobot", "--port", str(port)]
    else:
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        argv = [gunicorn, "-w", str(args.gunicorn_workers), "-b", f"127.0.0.1:{port}", "--chdir", str(BENCH)]
        argv += ["--log-level", "warning", "oa_serve:flask_app()"]
    return ["taskset", "-c", args.server_cpus, *argv] if args.pin else argv


# --- load -------------------------------------------------------------------------------------


def run_wrk(args: argparse.Namespace, port: int, prefix: str, offsets: list[int], seconds: float) -> dict[str, Any]:
    argv = [
        *(["taskset", "-c", args.load_cpus] if args.pin else []),
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(BENCH / "oa_replies.lua"), f"http://127.0.0.1:{port}{PATH}",
        "--", prefix, ",".join(str(o) for o in offsets), str(args.sample_every),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    return data


def run_pace(args: argparse.Namespace, port: int, file: Path, out: Path) -> dict[str, Any]:
    argv = [
        *(["taskset", "-c", args.load_cpus] if args.pin else []),
        sys.executable, str(BENCH / "oa_pace.py"), "--url", f"http://127.0.0.1:{port}", "--file", str(file),
        "--rate", str(args.rate), "--seconds", str(args.pace_seconds), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(argv, check=True)
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


# --- siyu-bot's database ----------------------------------------------------------------------


def receipt_counts(url: str) -> dict[str, dict[str, int]]:
    sql = "SELECT kind, status, count(*), count(DISTINCT dedup_key) FROM receipts GROUP BY kind, status"
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.split(":///", 1)[1], timeout=30)) as db:
            rows = db.execute(sql).fetchall()
    else:
        rows = asyncio.run(_pg_rows(url, sql))
    out: dict[str, dict[str, int]] = {}
    for kind, status, count, _distinct in rows:
        out.setdefault(str(kind), {})[str(status)] = int(count)
    return out


async def _pg_rows(url: str, sql: str) -> list[Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


def pending(url: str) -> int:
    return sum(v.get("pending", 0) for v in receipt_counts(url).values())


def wait_drained(url: str, limit: float) -> tuple[float | None, int]:
    """Seconds until no receipt is pending (None if still some after ``limit``), and how many were left."""
    t0 = time.monotonic()
    left = pending(url)
    while left and time.monotonic() - t0 < limit:
        time.sleep(0.2)
        left = pending(url)
    return (time.monotonic() - t0 if not left else None), left


# --- one target -------------------------------------------------------------------------------


@dataclass
class Row:
    target: str
    message: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    sent: int = 0
    repeats: int = 0
    ok: int = 0
    non2xx: int = 0
    socket_errors: int = 0
    encrypted: int = 0
    plain: int = 0
    other: int = 0
    sample_checked: int = 0
    sample_bad: int = 0
    contents: dict[str, int] = field(default_factory=dict)
    drain_s: float | None = None
    drain_left: int = 0
    pace: dict[str, Any] = field(default_factory=dict)
    server_cpu: float = 0.0
    other_cpu: float = 0.0
    receipts: dict[str, int] = field(default_factory=dict)

    @property
    def stores(self) -> bool:
        return self.target.startswith(("sqlite", "postgres"))

    @property
    def handles(self) -> bool:
        """The handlers run (the ``-intake`` diagnostics store and reply only)."""
        return self.stores and not self.target.endswith("-intake")

    def receipts_ok(self) -> bool:
        if not self.stores:
            return True
        stored = sum(self.receipts.values())
        paced = int(self.pace.get("sent", 0))
        low = self.ok - self.repeats + int(self.pace.get("ok", 0))
        return low <= stored <= self.sent - self.repeats + paced and self.receipts.get("failed", 0) == 0


def verify_samples(prefix: str, threads: int) -> tuple[int, int, dict[str, int]]:
    checked = bad = 0
    contents: dict[str, int] = {}
    for i in range(threads):
        path = Path(f"{prefix}.replies.{i + 1}.txt")
        if not path.exists():
            continue
        for body in path.read_text(encoding="utf-8").splitlines():
            checked += 1
            fields, _why = check_reply(body)
            if fields is None or not str(fields.get("ToUserName", "")).startswith("oBench"):
                bad += 1
                continue
            key = summary_of_content(fields)
            contents[key] = contents.get(key, 0) + 1
    return checked, bad, contents


def run_message(args: argparse.Namespace, server: Server, row: Row, prefix: Path, db_url: str, workdir: Path) -> None:
    wprefix = f"{prefix}.{row.message}"
    for i in range(args.threads):
        Path(f"{wprefix}.replies.{i + 1}.txt").unlink(missing_ok=True)
    zeros = [0] * args.threads
    warm = run_wrk(args, server.port, wprefix, zeros, args.warmup) if args.warmup > 0 else None
    offsets = [int(p) for p in warm["positions"]] if warm else zeros
    cpu0, busy0, t0 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    run = run_wrk(args, server.port, wprefix, offsets, args.duration)
    elapsed = time.monotonic() - t0
    server_cpu = server.cpu_seconds() - cpu0
    row.server_cpu = server_cpu / elapsed
    row.other_cpu = max(0.0, machine_busy_seconds() - busy0 - server_cpu) / elapsed  # wrk included
    lat = run["latency_us"]
    row.rps = run["requests"] / (run["duration_us"] / 1e6)
    row.p50_ms, row.p99_ms, row.max_ms = lat["p50"] / 1e3, lat["p99"] / 1e3, lat["max"] / 1e3
    for r in (warm, run):
        if r is None:
            continue
        e = r["errors"]
        row.sent += int(r["sent"])
        row.repeats += int(r["repeats"])
        row.non2xx += int(e["status"])
        row.socket_errors += int(e["connect"] + e["read"] + e["write"] + e["timeout"])
        row.ok += int(r["requests"]) - int(e["status"])
        row.encrypted += int(r["answers"]["encrypted"])
        row.plain += int(r["answers"]["plain"])
        row.other += int(r["answers"]["other"])
    row.sample_checked, row.sample_bad, row.contents = verify_samples(wprefix, args.threads)
    if row.handles:
        time.sleep(0.5)  # the requests in flight when wrk stopped
        row.drain_s, row.drain_left = wait_drained(db_url, args.drain_timeout)
    row.pace = run_pace(args, server.port, Path(f"{wprefix}.pace.txt"), workdir / f"{row.target}.{row.message}.json")
    if row.handles:
        wait_drained(db_url, args.drain_timeout)


def run_target(args: argparse.Namespace, target: str, workdir: Path, prefix: Path) -> list[Row]:
    port, platform_port = free_port(), free_port()
    db_url = ""
    platform: Server | None = None
    if target.startswith(("sqlite", "postgres")):
        backend = target.removesuffix("-intake")
        db_url = asyncio.run(prepare_db(backend, workdir, args.pg_url, f"oa_{target.replace('-', '_')}"))
        p_argv = [sys.executable, str(BENCH / "oa_serve.py"), "platform", "--port", str(platform_port)]
        p_argv = ["taskset", "-c", args.load_cpus, *p_argv] if args.pin else p_argv
        platform = Server("platform", p_argv, platform_port, workdir / "platform.log", workdir)
    cwd = workdir / target
    cwd.mkdir(exist_ok=True)
    server = Server(
        target, server_argv(args, target, port, db_url, platform_port), port, workdir / f"{target}.log", cwd
    )
    rows = [Row(target, m) for m in args.message_list]
    try:
        if platform is not None:
            platform.start()
        server.start()
        for row in rows:
            print(f"--- {target} / {row.message}", file=sys.stderr, flush=True)
            run_message(args, server, row, prefix, db_url, workdir)
            print(
                f"    {row.rps:,.0f} req/s p99 {row.p99_ms:.1f} ms; encrypted {row.encrypted:,} success {row.plain:,}"
                f" other {row.other:,}; drained {row.drain_s}; paced p99 {row.pace.get('p99_ms', 0):.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.stop()
        if platform is not None:
            platform.stop()
    if db_url:
        counts = receipt_counts(db_url)
        for row in rows:
            row.receipts = counts.get(KIND_OF[row.message], {})
    return rows


# --- report -----------------------------------------------------------------------------------


def table(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        "| target | message | replies/s | p50 ms | p99 ms | max ms | non-2xx | sock err | encrypted / success / other "
        "| sample decrypted | receipts stored (sent) | handled after burst s "
        f"| {args.rate:g}/s p50 ms | {args.rate:g}/s p99 ms | {args.rate:g}/s verified | server CPU | other CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        stored = "-"
        if r.stores:
            sent = f"{r.sent - r.repeats + int(r.pace.get('sent', 0)):,}"  # wrk counts its in-flight at the stop
            stored = f"{sum(r.receipts.values()):,} ({sent})" + ("" if r.receipts_ok() else " ⚠")
        drain = "-"
        if r.handles:
            drain = f"{r.drain_s:.1f}" if r.drain_s is not None else f"> {args.drain_timeout:g} ({r.drain_left:,} left)"
        p = r.pace
        lines.append(
            f"| {r.target} | {r.message} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.0f} "
            f"| {r.non2xx} | {r.socket_errors} | {r.encrypted:,} / {r.plain:,} / {r.other:,} "
            f"| {r.sample_checked - r.sample_bad}/{r.sample_checked} | {stored} | {drain} "
            f"| {p.get('p50_ms', float('nan')):.1f} | {p.get('p99_ms', float('nan')):.1f} "
            f"| {p.get('verified', 0)}/{p.get('sent', 0)} | {r.server_cpu:.0%} | {r.other_cpu:.0%} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if not r.stores:
            continue
        peer = next((p for p in rows if p.target == "werobot" and p.message == r.message), None)
        need = max(TARGET_RPS, PEER_FACTOR * peer.rps) if peer else TARGET_RPS
        p99 = float(r.pace.get("p99_ms", float("inf")))
        checks = {
            f"{r.rps:,.0f} replies/s ≥ {need:,.0f}": r.rps >= need,
            f"p99 at the fixed rate {p99:.1f} ms < {P99_LIMIT_MS:.0f} ms": p99 < P99_LIMIT_MS,
            f"handled ≤ {DRAIN_LIMIT_S:.0f} s after the burst": not r.handles
            or (r.drain_s is not None and r.drain_s <= DRAIN_LIMIT_S),
            "every answer an encrypted reply": r.plain == 0 and r.other == 0 and r.non2xx == 0 and r.sample_bad == 0
            and r.pace.get("verified") == r.pace.get("sent"),
            "receipts = requests": r.receipts_ok(),
        }  # fmt: skip
        missed = [k for k, ok in checks.items() if not ok]
        verdict = "PASS" if not missed else "MISS: " + "; ".join(missed)
        label = " (diagnostic: no handler runs, not a target)" if not r.handles else ""
        out.append(f"- {r.target} / {r.message}{label}: {'; '.join(checks)} → **{verdict}**")
    for r in rows:
        if r.contents:
            shown = ", ".join(f"«{k}» ×{v}" for k, v in r.contents.items())
            out.append(f"- {r.target} / {r.message} replies (decrypted sample): {shown}")
    return out


def bottle_auto_server() -> str:
    """What ``werobot.run`` (bottle's server "auto") serves with here: the first importable adapter."""
    import importlib.util

    for module, name in (("waitress", "waitress"), ("paste", "paste"), ("twisted", "twisted"),
                         ("cherrypy", "cherrypy"), ("cheroot", "cheroot")):  # fmt: skip
        if importlib.util.find_spec(module) is not None:
            return name
    return "wsgiref (single-threaded; none of waitress/paste/twisted/cherrypy/cheroot installed)"


def render_section(args: argparse.Namespace, rows: list[Row], argv: list[str], load_before: str) -> str:
    pin = (
        f"servers pinned to CPU {args.server_cpus}; wrk, the fixed-rate pusher and the stand-in WeChat API to CPU "
        f"{args.load_cpus} (`taskset`); PostgreSQL unpinned"
        if args.pin
        else "no CPU pinning"
    )
    cmd = command_line("bench/oa_replies.py", argv)
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    return "\n".join(
        [
            START,
            f"## Official Account passive replies — run of {utc_stamp()}",
            "",
            f"Command: `{cmd}`",
            "",
            *machine_lines(PACKAGES, args.pg_url if "postgres" in args.target_list else None, load=True),
            f"- load average before the run {load_before}; load generator: {wrk_version[0] if wrk_version else '?'}",
            f"- burst: {args.connections} connections, {args.threads} wrk thread(s), {args.warmup:g} s warm-up then "
            f"{args.duration} s measured; fixed rate: {args.rate:g} messages/s for {args.pace_seconds:g} s "
            f"(open loop, latency from when each was due); {pin}; gunicorn {args.gunicorn_workers} sync workers; "
            f"WeRoBot's bottle server: {bottle_auto_server()}",
            "- messages: poster-QR `subscribe` (`qrscene_poster_618`, a new openid each) and the keyword text `礼包`, "
            "distinct, signed, encrypted (safe mode); siyu-bot answers with its content, the peers with a fixed text",
            "",
            "*encrypted / success / other*: wrk's answers with an `<Encrypt>` envelope / a bare `success`",
            "(no reply) / anything else;",
            "*sample decrypted*: signature-checked and decrypted replies among every "
            f"{args.sample_every}th; *handled after burst*: seconds until no receipt was pending; CPU columns are",
            "shares of one core during the burst (*other*: wrk, PostgreSQL, neighbours).",
            "",
            table(rows, args),
            "",
            *verdicts(rows),
            END,
        ]
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=15, help="measured burst seconds per message (default 15)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds before each burst (default 3)")
    p.add_argument("--connections", type=int, default=200, help="wrk connections (default 200)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--requests", type=int, default=100_000, help="distinct requests per message for wrk")
    p.add_argument("--rate", type=float, default=200.0, help="fixed-rate messages/s (default 200)")
    p.add_argument("--pace-seconds", type=float, default=10.0, help="fixed-rate seconds (default 10)")
    p.add_argument("--drain-timeout", type=float, default=120.0, help="wait at most this for pending receipts")
    p.add_argument("--sample-every", type=int, default=100, help="verify every Nth encrypted wrk answer")
    p.add_argument("--gunicorn-workers", type=int, default=3, help="Flask under gunicorn: sync workers (2×1+1)")
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL URL, schema is reset (default {DEFAULT_PG})")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma list from {','.join(TARGETS)}")
    p.add_argument("--messages", default=",".join(MESSAGES), help="comma list from subscribe,text")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin with taskset")
    p.add_argument("--server-cpus", default="1", help="taskset CPU list for the servers (default 1)")
    p.add_argument("--load-cpus", default="0", help="taskset CPU list for wrk and the pusher (default 0)")
    p.add_argument("--workdir", help="keep requests, server logs and SQLite databases here (default: a temp dir)")
    p.add_argument("--write", action="store_true", help=f"replace the oa_replies section in {RESULTS.name}")
    args = p.parse_args(argv)
    args.target_list = [t.strip() for t in args.targets.split(",") if t.strip()]
    args.message_list = [m.strip() for m in args.messages.split(",") if m.strip()]
    if bad := [t for t in args.target_list if t not in TARGETS] + [m for m in args.message_list if m not in MESSAGES]:
        p.error(f"unknown target/message: {', '.join(bad)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    missing = [tool for tool in ("wrk", *(["taskset"] if args.pin else [])) if shutil.which(tool) is None]
    if missing:
        print(f"error: {', '.join(missing)} not installed (apt-get install -y wrk util-linux)", file=sys.stderr)
        return 2
    peers = {"werobot": "werobot", "flask": "flask"}
    for target, module in peers.items():
        if target in args.target_list and not _importable(module):
            print(f"error: {target} needs the bench extra: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
            return 2
    load_before = load_average()
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        if args.workdir:  # kept: server logs, the databases, wrk's reply samples
            workdir = Path(args.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="siyu-oa-bench-")))
        prefix = workdir / "oa"
        paced = int(args.rate * args.pace_seconds)
        for message in args.message_list:
            t0 = time.monotonic()
            generate_corpus(prefix, message, args.requests, paced, args.threads)
            print(f"generated {args.requests + paced:,} {message} requests in {time.monotonic() - t0:.1f} s",
                  file=sys.stderr)  # fmt: skip
        for target in args.target_list:
            rows.extend(run_target(args, target, workdir, prefix))
    section = render_section(args, rows, argv, load_before)
    print(section)
    if args.write:
        write_results(section, START, END)
        print(f"wrote {RESULTS}", file=sys.stderr)
    broken = [r for r in rows if r.stores and not r.receipts_ok()]
    return 1 if broken else 0


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.exit(main())
