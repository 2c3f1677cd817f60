"""Outbound webhooks: deliveries per second from one process, and a backlog draining while welcomes go out.

    .venv/bin/python bench/webhooks_out.py [--backend sqlite|postgres] [--n 20000] [--backlog 100000]
                                           [--friends 20] [--pg-url URL] [--write]

1. **Throughput**: ``--n`` pending deliveries for one endpoint are written straight into the database; the
   real app (``bot.rig.Rig``, SystemClock, shipped content) starts with its delivery worker and sends them,
   signed, to a receiver in **another process** (aiohttp, answers 204 without verifying, so the bot's
   process is what is measured). Rate = deliveries / seconds until the last is recorded ``delivered``.
2. **Backlog**: ``--backlog`` deliveries queued, then ``--friends`` new WeCom friends arrive (one every
   0.25 s) while the worker drains it. Reported: each welcome's outbox ``created_at → finished_at`` (both on
   the app's clock), and how long the backlog took.
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


async def run(args: argparse.Namespace, workdir: Path, port: int) -> list[str]:
    from sqlalchemy import select

    from bot.actions import run_action
    from bot.clock import SystemClock
    from bot.config import WebhooksConfig
    from bot.db.models import OutboxCall
    from bot.rig import Rig
    from handlers import features
    from handlers.growth.simulated_corp import seed_corp
    from handlers.integrations.endpoints import add_endpoint

    lines: list[str] = []
    for phase, n in (("throughput", args.n), ("backlog", args.backlog)):
        url = await prepare_db(args.backend, workdir, args.pg_url, f"webhooks_{phase}")
        settings = make_settings(workdir, url)
        hooks = WebhooksConfig(allow_private_targets=True, delivery_concurrency=args.concurrency)
        settings = settings.model_copy(update={"webhooks": hooks})
        rig = await Rig.start(settings, SystemClock(), features(), rng=random.Random(1), prepare=seed_corp)
        try:
            made = await run_action(
                rig.services,
                lambda ctx: add_endpoint(
                    ctx.session, f"http://127.0.0.1:{port}/hook", "customer.touched", ordered=False,
                    allow_private=True, now=ctx.now(),
                ),
            )  # fmt: skip
            await queue(rig, made.id, n)
            load0 = load_average()
            t0 = time.perf_counter()
            from handlers.integrations.delivery import WEBHOOK_WORKER

            rig.services.parts[WEBHOOK_WORKER].wake()
            welcomes: list[float] = []
            if phase == "backlog":
                for i in range(args.friends):
                    await rig.sim.add_friend("lulu", state="pkgcard", external_userid=f"wmBench{i:05d}")
                    await asyncio.sleep(0.25)
            while (counts := await delivered(rig))[0] < counts[1]:
                if time.perf_counter() - t0 > args.timeout:
                    break
                await asyncio.sleep(0.2)
            elapsed = time.perf_counter() - t0
            done = counts[0]
            if phase == "backlog":
                async with rig.services.sessions() as s:
                    rows = (
                        await s.execute(
                            select(OutboxCall.created_at, OutboxCall.finished_at, OutboxCall.state).where(
                                OutboxCall.api.like("%send_welcome_msg%")
                            )
                        )
                    ).all()
                welcomes = [(f - c).total_seconds() * 1000 for c, f, st in rows if f is not None and st == "sent"]
                lines.append(
                    f"| {args.backend} | backlog {n:,} + {args.friends} new friends | {done:,} delivered in "
                    f"{elapsed:.1f} s ({done / elapsed:,.0f}/s) | welcomes sent {len(welcomes)}/{args.friends}, "
                    f"p50 {pct(welcomes, 50):.0f} ms, max {max(welcomes, default=float('nan')):.0f} ms | "
                    f"{load0} → {load_average()} |"
                )
            else:
                lines.append(
                    f"| {args.backend} | throughput {n:,} | {done:,} delivered in {elapsed:.1f} s "
                    f"({done / elapsed:,.0f}/s) | - | {load0} → {load_average()} |"
                )
            print(lines[-1], flush=True)
        finally:
            await rig.close()
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--backlog", type=int, default=100000)
    p.add_argument("--friends", type=int, default=20)
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
