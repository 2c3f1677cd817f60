"""Console page weight and speed with 100,000 customers (issue 13): each page < 200 KB, < 300 ms.

    .venv/bin/python bench/console.py [--customers 100000] [--backend sqlite|postgres] [--pg-url URL] [--write]

Seeds a migrated database with ``--customers`` customers in bulk (core ``executemany``, 10,000 a batch),
created evenly over the last 365 days, each with a first touch through one of the shipped channels (70 %
WeCom friend adds, 30 % Official Account follows), a delivered welcome, two tags; 10 % lost again, 20 %
checked in once, 5 % enrolled in the ``pkgcard_followup`` drip with a pending step in the next 30 days.
Then serves the real app (``bot.app.build_app`` with every feature) on a loopback port, signs in as an
owner through the login form and GETs every console page ``--rounds`` times after one warm-up:
the bytes transferred (body + headers, no compression) and the time to the last byte on loopback (an upper
bound of the server time; the client is in the same process and idle meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import command_line, machine_lines, make_settings, prepare_db, utc_stamp, write_results

START, END = "<!-- console:start -->", "<!-- console:end -->"
BATCH = 10_000
PASSWORD = "bench-password-123"
PAGES = (
    "/console/", "/console/?period=today", "/console/?period=30", "/console/customers",
    "/console/customers?q=%E5%AE%A2%E6%88%B7123", "/console/customers?channel=pkgcard", "/console/customers/{cid}",
    "/console/channels", "/console/sop", "/console/interactions", "/console/events", "/console/audit",
    "/console/staff", "/console/content", "/console/content/drafts/2?file=messages.toml",
)  # fmt: skip


async def seed(url: str, settings: Any, count: int) -> None:
    from sqlalchemy import insert

    from bot.content_revisions import create_draft, publish_files, read_directory
    from bot.db.engine import make_engine
    from bot.db.models import Customer
    from handlers.console.users import add_user
    from handlers.content import content_registry
    from handlers.growth.content import channels_of
    from handlers.growth.tables import CustomerTag, Loss, Touch, Welcome
    from handlers.interactions.tables import Checkin
    from handlers.sop.tables import DripEnrolment, DripStepRun

    rng = random.Random(13)
    now = datetime.now(UTC)
    channels = list(channels_of(settings_content(settings)).channels)
    engine = make_engine(settings.database)
    async with engine.begin() as conn:
        for start in range(1, count + 1, BATCH):
            ids = range(start, min(count + 1, start + BATCH))
            rows: dict[Any, list[dict[str, Any]]] = {m: [] for m in (Customer, Touch, Welcome, CustomerTag, Loss,
                                                                     Checkin, DripEnrolment, DripStepRun)}  # fmt: skip
            for i in ids:
                at = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
                ch = channels[i % len(channels)]
                wecom = ch.platform.is_wecom
                rows[Customer].append({
                    "id": i, "name": f"客户{i}", "created_at": at, "updated_at": at, "wecom_friend": wecom,
                    "mp_follower": not wecom, "external_userid": f"wm{i:010d}" if wecom else None,
                    "openid": None if wecom else f"o{i:012d}", "first_channel": ch.code, "first_touch_at": at,
                })  # fmt: skip
                rows[Touch].append({
                    "id": i, "customer_id": i, "channel_code": ch.code, "platform": "wecom_friend" if wecom else "mp",
                    "action": "friend_added" if wecom else "followed", "first": True, "occurred_at": at,
                    "staff_userid": "lulu" if wecom else None,
                })  # fmt: skip
                rows[Welcome].append({"id": i, "customer_id": i, "channel_code": ch.code, "via": "passive_reply",
                                      "state": "sent", "created_at": at})  # fmt: skip
                for tag in (f"渠道/{ch.name}", "兴趣/坚果" if i % 2 else "兴趣/果干"):
                    rows[CustomerTag].append({"customer_id": i, "tag": tag, "source": "bench", "created_at": at})
                if i % 10 == 0:
                    rows[Loss].append({"customer_id": i, "channel_code": ch.code, "kind": "customer_deleted",
                                       "occurred_at": at + timedelta(days=rng.uniform(0, 20))})  # fmt: skip
                if i % 5 == 0:
                    rows[Checkin].append({"customer_id": i, "local_day": (now - timedelta(days=i % 30)).date()
                                          .isoformat(), "checked_at": now - timedelta(days=i % 30), "streak": 1,
                                          "points": 5, "source": "mp"})  # fmt: skip
                if i % 20 == 0 and wecom:
                    rows[DripEnrolment].append({"id": i, "customer_id": i, "drip_id": "pkgcard_followup",
                                                "anchor_at": now, "state": "active"})  # fmt: skip
                    rows[DripStepRun].append({"enrolment_id": i, "customer_id": i, "drip_id": "pkgcard_followup",
                                              "step_id": "gift", "state": "pending",
                                              "due_at": now + timedelta(hours=rng.uniform(1, 24 * 29))})  # fmt: skip
            for model, values in rows.items():
                if values:
                    await conn.execute(insert(model), values)
    if url.startswith("postgresql"):
        from sqlalchemy import text

        async with engine.begin() as conn:
            for table in ("customers", "touches", "welcomes", "losses", "customer_tags"):
                await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count + 1})"
                                        ) if table != "customer_tags" else text("SELECT 1"))  # fmt: skip
            await conn.execute(text("ANALYZE"))
    from bot.db.engine import sessionmaker

    async with sessionmaker(engine)() as session, session.begin():
        await add_user(session, "owner@bench.example", "owner", PASSWORD, now)
        files = read_directory(settings.content_dir)  # revision 1 (live) and a draft of it (revision 2)
        await publish_files(session, files, content_registry(), author="bench", message="", now=now)
        await create_draft(session, author="bench", message="", now=now)
    await engine.dispose()


def settings_content(settings: Any) -> Any:
    from handlers.content import load_content

    return load_content(settings.content_dir)


async def measure(settings: Any, rounds: int) -> list[tuple[str, int, float, float]]:
    import aiohttp
    from aiohttp import web

    from bot.app import build_app
    from handlers import features

    app = build_app(settings, features())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    out = []
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), auto_decompress=False) as http:
            form = await (await http.get(base + "/console/login")).text()
            token = re.search(r'name="csrf" value="([^"]+)"', form)
            assert token
            data = {"email": "owner@bench.example", "password": PASSWORD, "csrf": token.group(1)}
            async with http.post(base + "/console/login", data=data, allow_redirects=False) as signed:
                assert signed.status == 303, signed.status
            for path in PAGES:
                path = path.format(cid=4321)
                times, size = [], 0
                for n in range(rounds + 1):
                    began = time.perf_counter()
                    async with http.get(base + path, allow_redirects=False) as resp:
                        body = await resp.read()
                        assert resp.status == 200, (path, resp.status, body[:300])
                    if n:
                        times.append((time.perf_counter() - began) * 1000)
                    head = sum(len(k) + len(v) + 4 for k, v in resp.raw_headers) + 17
                    size = len(body) + head
                out.append((path, size, statistics.median(times), max(times)))
    finally:
        await runner.cleanup()
    return out


def report(backend: str, count: int, rows: list[tuple[str, int, float, float]], argv: list[str], pg: str) -> str:
    lines = [
        START,
        f"### Console pages with {count:,} customers ({backend}), {utc_stamp()}",
        "",
        f"`{command_line('bench/console.py', argv)}`",
        "",
        *machine_lines(("aiohttp", "SQLAlchemy", "Jinja2"), pg or None, load=True),
        "",
        "| page | transferred | median ms | max ms | < 200 KB and < 300 ms |",
        "|---|--:|--:|--:|:-:|",
    ]
    for path, size, median, worst in rows:
        ok = "yes" if size < 200_000 and worst < 300 else "**no**"
        lines.append(f"| `{path}` | {size / 1024:.1f} KB | {median:.0f} | {worst:.0f} | {ok} |")
    return "\n".join([*lines, END])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench_console")
    parser.add_argument("--write", action="store_true", help="record the table in bench/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = asyncio.run(prepare_db(args.backend, workdir, args.pg_url, "console"))
        settings = make_settings(workdir, url)
        began = time.perf_counter()
        asyncio.run(seed(url, settings, args.customers))
        print(f"seeded {args.customers:,} customers in {time.perf_counter() - began:.1f} s", flush=True)
        rows = asyncio.run(measure(settings, args.rounds))
    text = report(args.backend, args.customers, rows, argv, args.pg_url if args.backend == "postgres" else "")
    print(text)
    if args.write:
        write_results(text.replace(START, START.replace("start", f"start:{args.backend}")).replace(
            END, END.replace("end", f"end:{args.backend}")), START.replace("start", f"start:{args.backend}"),
            END.replace("end", f"end:{args.backend}"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
