"""Outbound webhooks: deliveries per second from one process, and a backlog draining while welcomes go out.

    .venv/bin/python bench/webhooks_out.py [--backend sqlite|postgres] [--n 20000] [--backlog 100000]
                                           [--rate 2] [--baseline-seconds 30] [--pg-url URL] [--write]

1. **Throughput**: ``--n`` pending deliveries for one endpoint are written straight into the database; the
   real app (``bot.rig.Rig``, SystemClock, shipped content) starts with its delivery worker and sends them,
   signed, to a receiver in **another process** (aiohttp, answers 204 without verifying, so the bot's
   process is what is measured). Rate = deliveries / seconds until the last is recorded ``delivered``.
2. **Welcomes without, then during, a backlog** (issue 12: "a backlog of 100,000 drains without starving
   welcomes"): on a fresh database, new WeCom friends arrive at ``--rate`` a second (signed callbacks from
   the simulator, each pushed on schedule whatever the previous one's ack took) for ``--baseline-seconds``
   with nothing else queued; then, on another fresh database, ``--backlog`` deliveries are queued and the
   same friends arrive at the same rate for as long as the backlog drains. Reported: the drain rate, and
   each welcome's latency = the simulator's time of its ``send_welcome_msg`` call − its callback's
   ``receipts.received_at`` (one clock), p50 / p99 / max, for both runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from common import command_line, load_average, machine_lines, pct, prepare_db, make_settings, utc_stamp, write_results  # noqa: E402,I001

RECEIVER = """
import sys
from aiohttp import web
async def hook(request):
    await request.read()
    return web.Response(status=204)
app = web.Application()
app.router.add_post("/hook", hook)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
START, END = "<!-- bench:webhooks_out:start -->", "<!-- bench:webhooks_out:end -->"


async def queue(rig: object, endpoint_id: int, n: int) -> None:
    from sqlalchemy import insert

    from handlers.integrations.tables import WebhookDelivery

    services = rig.services  # type: ignore[attr-defined]
    now = services.clock.now()
    body = '{"type":"customer.touched","timestamp":"%s","data":{"customer_id":%d}}'
    async with services.sessions() as s, s.begin():
        for start in range(0, n, 5000):
            rows = [
                dict(endpoint_id=endpoint_id, event_type="customer.touched", customer_id=i, ordered=False,
                     body=body % (now.isoformat(), i), state="pending", attempts=0, created_at=now,
                     next_attempt_at=now)
                for i in range(start, min(n, start + 5000))
            ]  # fmt: skip
            await s.execute(insert(WebhookDelivery), rows)


async def delivered(rig: object) -> tuple[int, int]:
    from sqlalchemy import func, select

    from handlers.integrations.tables import WebhookDelivery

    async with rig.services.sessions() as s:  # type: ignore[attr-defined]
        d = WebhookDelivery
        n = await s.scalar(select(func.count()).select_from(d).where(d.state == "delivered"))
        total = await s.scalar(select(func.count()).select_from(d))
        return int(n or 0), int(total or 0)


WELCOME_API = "externalcontact/send_welcome_msg"


async def all_delivered(rig: object, t0: float, timeout: float) -> tuple[int, int]:
    """(delivered, total) once everything is delivered or ``timeout`` s after ``t0``."""
    while True:
        counts = await delivered(rig)
        if counts[0] >= counts[1] or time.perf_counter() - t0 > timeout:
            return counts
        await asyncio.sleep(0.2)


async def start_rig(args: argparse.Namespace, workdir: Path, tag: str) -> object:
    from bot.clock import SystemClock
    from bot.config import WebhooksConfig
    from bot.rig import Rig
    from handlers import features
    from handlers.growth.simulated_corp import seed_corp

    url = await prepare_db(args.backend, workdir, args.pg_url, f"webhooks_{tag}")
    settings = make_settings(workdir, url)
    hooks = WebhooksConfig(allow_private_targets=True, delivery_concurrency=args.concurrency)
    settings = settings.model_copy(update={"webhooks": hooks})
    return await Rig.start(settings, SystemClock(), features(), rng=random.Random(1), prepare=seed_corp)


async def subscribe(rig: object, port: int) -> int:
    from bot.actions import run_action
    from handlers.integrations.endpoints import add_endpoint

    made = await run_action(
        rig.services,  # type: ignore[attr-defined]
        lambda ctx: add_endpoint(
            ctx.session, f"http://127.0.0.1:{port}/hook", "customer.touched", ordered=False,
            allow_private=True, now=ctx.now(),
        ),
    )  # fmt: skip
    return made.id


async def push_friends(rig: object, rate: float, cap: int, prefix: str, stop: asyncio.Event) -> list[str]:
    """New WeCom friends at ``rate`` a second (each its own task: a slow ack never delays the next) until
    ``stop`` is set or ``cap`` arrived; their welcome codes."""
    codes: list[str] = []

    async def one(i: int) -> None:
        added = await rig.sim.add_friend("lulu", state="pkgcard", external_userid=f"wm{prefix}{i:05d}")  # type: ignore[attr-defined]
        codes.append(added.welcome_code)

    tasks = []
    t0 = time.monotonic()
    for i in range(cap):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        if stop.is_set():
            break
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return codes


async def welcome_latencies(rig: object, codes: list[str], timeout: float = 60.0) -> list[float]:
    """Per welcome code: the simulator's time of the ``send_welcome_msg`` call − the receipt's
    ``received_at`` (the same clock), once every welcome went out (or ``timeout``)."""
    from sqlalchemy import select

    from bot.db.models import Receipt

    state = rig.state  # type: ignore[attr-defined]
    wanted = set(codes)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = {(c.body or {}).get("welcome_code") for c in state.calls_to(WELCOME_API)}
        if wanted <= sent:
            break
        await asyncio.sleep(0.05)
    first: dict[str, object] = {}
    for call in state.calls_to(WELCOME_API):
        first.setdefault((call.body or {}).get("welcome_code"), call.at)
    async with rig.services.sessions() as s:  # type: ignore[attr-defined]
        rows = (await s.execute(select(Receipt.payload, Receipt.received_at))).all()
    received = {str(p["WelcomeCode"]): at for p, at in rows if isinstance(p, dict) and p.get("WelcomeCode")}
    return [
        (first[c] - received[c]).total_seconds() * 1000  # type: ignore[operator]
        for c in codes
        if c in first and c in received
    ]


def welcome_text(lat: list[float], asked: int) -> str:
    if not lat:
        return f"welcomes sent 0/{asked}"
    return (
        f"welcomes sent {len(lat)}/{asked}, p50 {pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms, max {max(lat):.0f} ms"
    )


async def throughput(args: argparse.Namespace, workdir: Path, port: int) -> str:
    from handlers.integrations.delivery import WEBHOOK_WORKER

    rig = await start_rig(args, workdir, "throughput")
    try:
        await queue(rig, await subscribe(rig, port), args.n)
        load0, t0 = load_average(), time.perf_counter()
        rig.services.parts[WEBHOOK_WORKER].wake()  # type: ignore[attr-defined]
        counts = await all_delivered(rig, t0, args.timeout)
        elapsed = time.perf_counter() - t0
        return (
            f"| {args.backend} | throughput {args.n:,} | {counts[0]:,} delivered in {elapsed:.1f} s "
            f"({counts[0] / elapsed:,.0f}/s) | - | {load0} → {load_average()} |"
        )
    finally:
        await rig.close()  # type: ignore[attr-defined]


async def welcomes(args: argparse.Namespace, workdir: Path, port: int, backlog: int) -> str:
    """New friends at ``--rate``/s: for ``--baseline-seconds`` with no backlog, or while ``backlog``
    deliveries drain (each welcome measured receipt → ``send_welcome_msg`` call)."""
    from handlers.integrations.delivery import WEBHOOK_WORKER

    rig = await start_rig(args, workdir, f"backlog_{backlog}")
    try:
        endpoint = await subscribe(rig, port)
        await queue(rig, endpoint, backlog)
        stop = asyncio.Event()
        load0, t0 = load_average(), time.perf_counter()
        rig.services.parts[WEBHOOK_WORKER].wake()  # type: ignore[attr-defined]
        cap = args.friends if backlog else max(1, int(args.rate * args.baseline_seconds))
        pushing = asyncio.create_task(push_friends(rig, args.rate, cap, f"B{backlog}x", stop))
        drained = None
        while not pushing.done():
            counts = await delivered(rig)
            if drained is None and counts[0] >= backlog:
                drained = time.perf_counter() - t0
                if backlog:
                    stop.set()  # friends only while the backlog drains
            await asyncio.sleep(0.25)
        codes = await pushing
        lat = await welcome_latencies(rig, codes)
        await all_delivered(rig, t0, args.timeout)
        if drained is None:
            drained = time.perf_counter() - t0
        run = (
            f"backlog {backlog:,} + new friends at {args.rate:g}/s"
            if backlog
            else f"no backlog, new friends at {args.rate:g}/s"
        )
        deliveries = f"{backlog:,} drained in {drained:.1f} s ({backlog / drained:,.0f}/s)" if backlog else "-"
        return (
            f"| {args.backend} | {run} | {deliveries} | {welcome_text(lat, len(codes))} | {load0} → {load_average()} |"
        )
    finally:
        await rig.close()  # type: ignore[attr-defined]


async def run(args: argparse.Namespace, workdir: Path, port: int) -> list[str]:
    lines: list[str] = []
    if args.n:
        lines.append(await throughput(args, workdir, port))
        print(lines[-1], flush=True)
    for backlog in (0, args.backlog):  # the same friends without, then during, the backlog
        lines.append(await welcomes(args, workdir, port, backlog))
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--backlog", type=int, default=100000)
    p.add_argument("--friends", type=int, default=1000, help="at most this many new friends during the drain")
    p.add_argument("--rate", type=float, default=2.0, help="new friends a second")
    p.add_argument("--baseline-seconds", type=float, default=30.0, help="friends without a backlog this long")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench")
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    port = 18000 + random.randrange(1000)
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as tmp:
            lines = asyncio.run(run(args, Path(tmp), port))
    finally:
        receiver.terminate()
        receiver.wait()
    if args.write:
        section = "\n".join(
            [
                START,
                f"## Webhooks out, run of {utc_stamp()}",
                "",
                f"Command: `{command_line('bench/webhooks_out.py', sys.argv[1:])}`",
                "",
                *machine_lines(["aiohttp", "SQLAlchemy", "standardwebhooks"], args.pg_url),
                "- one bot process (Rig, SystemClock), the receiver in a second process answering 204; the machine "
                "is shared with other work (load average before → after each run)",
                "",
                "| backend | run | deliveries | welcomes (outbox created → sent) | load |",
                "|---|---|---|---|---|",
                *lines,
                END,
            ]
        )
        write_results(section, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
