"""Lottery draws per second on one process, with the prize-stock row hot, on SQLite and PostgreSQL.

Every draw is a real request path. Targets per database, in the same run:

- ``insert``: baseline — one transaction per draw holding a single plain INSERT (a ticket row);
- ``draw-no-stock`` / ``draw-hot``: one transaction per draw (``bot.actions.run_action`` running
  ``handlers.interactions.lottery.draw.draw``, as a callback's receipt transaction runs it) on a campaign
  whose only outcome
  is "no prize" / with ONE stocked prize that every draw takes (stock = draws, one hot ``prize_stock`` row);
- ``batched-no-stock`` / ``batched-hot``: the same campaigns through ``handlers.interactions.lottery.batch`` (H5 taps):
  concurrent draws of a campaign settled together, one transaction per batch;
- ``paced-batched``: open loop at ``--rate`` draws/s (default 500) through the batcher on a hot campaign;
  latency runs from each draw's scheduled start, so a backlog shows in p99;
- ``paced-keyword``: ``--keyword-draws`` "抽奖" text messages at ``--rate`` through the real ``Dispatcher`` and
  ``handlers.interactions.keywords`` (receipt transaction → rule → ``ensure_customer`` → ``draw`` → passive reply in the
  ``ReplySlot``), receipts stored before the run as the inbox does before the 200; HTTP, signature and
  XML are not in it. The dispatcher is built as ``bot.app`` builds it, with the shipped ``pool_size``.

``--concurrency`` workers pull the closed-loop targets' draws from one queue (one customer each). Every draw
target is checked afterwards: stock 0 (hot), winners == draws (hot) or 0, ``seq`` 1..n contiguous, and every
draw replayed from the seed as ``siyu-bot lottery verify`` does — the run exits 1 otherwise.

**PostgreSQL: the script runs ``DROP SCHEMA public CASCADE`` on ``--pg-url``** (default: a database of its
own, ``siyu_lottery_bench``, created when missing). ``--write`` replaces the section between the
``bench:draws`` markers in ``RESULTS.md`` (appended when missing); other sections are kept.

    .venv/bin/python bench/draws.py --draws 3000 --concurrency 32 --write
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, text

from bot.actions import run_action
from bot.clock import SystemClock
from bot.config import DatabaseConfig, build_settings
from bot.content import Content
from bot.db.engine import make_engine, sessionmaker
from bot.db.models import Customer, Receipt
from bot.dispatcher import Dispatcher
from bot.events import TextReceived
from bot.metrics import Metrics
from bot.replies import TextReply
from bot.reply_slot import ReplySlot
from bot.services import Services
from handlers.content import load_content
from handlers.interactions.content.keywords import KEYWORDS
from handlers.interactions.content.lottery import CAMPAIGNS
from handlers.interactions.content.model import (
    ActionKind,
    Campaign,
    Eligibility,
    KeywordRule,
    MatchKind,
    Prize,
    PrizeKind,
)
from handlers.interactions.keywords import router as keywords_router
from handlers.interactions.lottery.batch import BATCHER, MAX_BATCH, LotteryBatcher, batcher_for
from handlers.interactions.lottery.draw import draw
from handlers.interactions.lottery.state import campaign_state
from handlers.interactions.lottery.verifiable import DrawRecord, PrizeTable, replay
from handlers.interactions.tables import Draw, LotteryTicket, PrizeStock

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- bench:draws:start -->", "<!-- bench:draws:end -->"
TARGETS = (
    "insert",
    "draw-no-stock",
    "draw-hot",
    "batched-no-stock",
    "batched-hot",
    "paced-batched",
    "paced-keyword",
)
NOTES = """
Where the time goes. One transaction per draw (`draw-*`, and every keyword draw, which runs inside its
message's receipt transaction) is ~8 statements, and from the campaign row lock to the commit (lock
UPDATE, max(seq), stock UPDATE, draw INSERT, commit) every draw of the campaign waits for the one before:
that lock is what makes `seq` the stock-taking order `lottery verify` replays. Each of those round trips
costs 0.3-2 ms on this shared 2-CPU machine, so one campaign tops out at a few hundred draws/s whatever
the concurrency. Batched (`batched-*`, `paced-batched`), the same statements run once per batch: bonus
lookup, one multi-row ticket INSERT, the lock, max(seq), one conditional stock UPDATE per prize, one
multi-row draw INSERT, commit — for all the draws queued while the previous batch ran. The lock is held
once per batch, and what is left per draw is Python (HMAC, row building, the result): the bench process
runs near one full core (`bench CPU`), so the machine's CPU, not the lock, is now the bound. The
`paced-keyword` row is the chat path, which cannot join a batch (its draw must commit with its receipt;
a separate transaction would wait on the receipt's uncommitted new customer row on PostgreSQL and on
the write lock on SQLite): its ceiling is one receipt transaction (~9 statements) at a time on SQLite and
the campaign lock on PostgreSQL."""


@dataclass(frozen=True)
class Row:
    db: str
    target: str
    draws: int
    seconds: float
    p50_ms: float
    p99_ms: float
    check: str
    cpu: float  # this process's CPU time / wall time (1.0 = one core busy)

    @property
    def rate(self) -> float:
        return self.draws / self.seconds


def bench_campaign(campaign_id: str, hot: bool, stock: int) -> Campaign:
    prize = (
        Prize("hot", "热门奖品", PrizeKind.PHYSICAL, weight=1, stock=stock)
        if hot
        else Prize("none", "谢谢参与", PrizeKind.NONE, weight=1, stock=None)
    )
    return Campaign(
        campaign_id, "压测", True, datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
        Eligibility(), None, None, 0, (prize,), None, MappingProxyType({}),
    )  # fmt: skip


async def reset_postgres(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    target = make_url(url)
    admin = create_async_engine(target.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database})
        if not found:
            await conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    await admin.dispose()
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def prepare(db: str, pg_url: str, workdir: Path) -> str:
    from bot.db.migrate import upgrade

    url = f"sqlite+aiosqlite:///{workdir / 'draws.db'}" if db == "sqlite" else pg_url
    if db == "postgres":
        asyncio.run(reset_postgres(url))
    upgrade(url)
    return url


async def run_queue(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            t0 = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def run_paced(n: int, rate: float, one: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    """Open loop: draw i starts at ``i / rate`` s whatever the earlier ones are doing (as customers tap);
    its latency runs from that scheduled start, so a backlog shows up in the percentiles."""
    latencies: list[float] = []
    started = time.perf_counter()

    async def at(i: int) -> None:
        due = started + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await one(i)
        latencies.append(time.perf_counter() - due)

    await asyncio.gather(*(at(i) for i in range(n)))
    return time.perf_counter() - started, latencies


async def check_draws(svc: Services, campaign: Campaign, n: int, hot: bool) -> str:
    """Stock, winners, contiguous seq, and every draw replayed from the seed as `lottery verify` does."""
    async with svc.sessions() as s:
        rows = (await s.scalars(select(PrizeStock).where(PrizeStock.campaign_id == campaign.id))).all()
        query = select(Draw.seq, Draw.ticket_id, Draw.roll, Draw.prize_id).where(Draw.campaign_id == campaign.id)
        draws = [DrawRecord(int(r.seq), int(r.ticket_id), r.roll, r.prize_id) for r in (await s.execute(query)).all()]
        state = await campaign_state(s, campaign.id)
    assert state is not None
    won = sum(d.prize_id is not None for d in draws)
    seqs = {d.seq for d in draws}
    table = PrizeTable(
        tuple((p.id, p.weight) for p in campaign.prizes),
        frozenset(p.id for p in campaign.prizes if p.kind is PrizeKind.NONE),
        {r.prize_id: r.initial for r in rows},
    )
    replayed = replay(state.seed, campaign.id, draws, table)
    left = sum(r.remaining for r in rows)
    ok = len(draws) == n and seqs == set(range(1, n + 1)) and replayed.ok and won == (n if hot else 0) and left == 0
    verdict = "verify OK" if replayed.ok else f"verify FAILED ({len(replayed.mismatches)})"
    stock = f"stock left {left}, " if hot else ""
    return f"{'OK' if ok else 'FAIL'}: {stock}winners {won}, seq 1..{max(seqs, default=0)} ({len(seqs)}), {verdict}"


WIN_TEXT = "恭喜！你在「压测」抽中了 热门奖品 🎉"


async def keyword_path(
    svc: Services, campaign_id: str, n: int, replies: list[str]
) -> Callable[[int], Awaitable[object]]:
    """The real "抽奖" text-message path after the inbox: one pending receipt per message (stored before
    the run, as the inbox writer does before WeChat gets its 200), then ``Dispatcher.submit`` with a
    ``ReplySlot`` — the receipt transaction, ``handlers.interactions.keywords`` (rule match, ``ensure_customer``,
    ``draw``), the passive reply — timed until the reply is in the slot. The dispatcher runs as
    ``bot.app`` builds it, with the shipped ``pool_size`` (10): one receipt at a time on SQLite, ten on
    PostgreSQL."""
    database = svc.settings.database.model_copy(update={"pool_size": DatabaseConfig().pool_size})
    settings = svc.settings.model_copy(update={"database": database})
    dispatcher = Dispatcher([keywords_router], svc.sessions, settings, svc.clock, svc.rng, Metrics(), _ignore, svc)
    now = svc.clock.now()
    events = [
        TextReceived("mp", "gh_bench", int(now.timestamp()), {"MsgId": f"{campaign_id}-{i}"}, f"b{i}", "抽奖")
        for i in range(n)
    ]
    rows = [
        {"dedup_key": e.dedup_key, "platform": "mp", "kind": e.kind, "payload": e.raw, "received_at": now,
         "lease_until": now, "status": "pending"}
        for e in events
    ]  # fmt: skip
    async with svc.sessions() as s, s.begin():
        await s.execute(insert(Receipt), rows)
        keys = [e.dedup_key for e in events]
        found = dict((await s.execute(select(Receipt.dedup_key, Receipt.id).where(Receipt.dedup_key.in_(keys)))).all())
    receipt_ids = [int(found[k]) for k in keys]

    async def one(i: int) -> object:
        slot = ReplySlot()
        dispatcher.submit(receipt_ids[i], events[i], slot)
        reply = await slot.wait(600.0, 0.0)  # the whole latency, not WeChat's 5-s cut
        if isinstance(reply, TextReply):
            replies.append(reply.content)
        return reply

    return one


def _ignore(_calls: object) -> None:
    return None


async def measure(svc: Services, db: str, target: str, customers: list[int], args: argparse.Namespace) -> Row:
    n = len(customers)
    campaign_id = f"{target}-{uuid.uuid4().hex[:6]}"
    batcher: LotteryBatcher | None = None
    campaign: Campaign | None = None
    one: Callable[[int], Awaitable[object]]
    if target == "insert":

        async def one_insert(i: int) -> object:
            async with svc.sessions() as s, s.begin():
                row = {
                    "campaign_id": campaign_id,
                    "customer_id": customers[i],
                    "ref": "x",
                    "created_at": svc.clock.now(),
                }
                return await s.execute(insert(LotteryTicket).values(**row))

        one = one_insert
    else:
        campaign = bench_campaign(campaign_id, "no-stock" not in target, n)
        sections = {**svc.content.sections, CAMPAIGNS.key: (campaign,)}
        svc.content = Content(svc.content.root, MappingProxyType(sections), svc.content.files)
        if target == "paced-keyword":
            mp = frozenset({"mp"})
            rule = KeywordRule(
                "lottery", MatchKind.EXACT, "抽奖", 100, mp, None, None, None, ActionKind.LOTTERY, campaign_id
            )
            sections = {**svc.content.sections, KEYWORDS.key: (rule,)}
            svc.content = Content(svc.content.root, MappingProxyType(sections), svc.content.files)
        elif "batched" in target:
            svc.parts.pop(BATCHER)  # a new batcher per target (its counters)
            batcher = batcher_for(svc)
            batcher.max_batch = args.max_batch
            one = lambda i: batcher.draw(customers[i], campaign_id, "h5")  # noqa: E731
        else:
            one = lambda i: run_action(svc, lambda ctx: draw(ctx, customers[i], campaign_id, "h5"))  # noqa: E731
    replies: list[str] = []
    if target == "paced-keyword":
        one = await keyword_path(svc, campaign_id, n, replies)
    cpu0 = time.process_time()
    if target.startswith("paced"):
        seconds, lat = await run_paced(n, args.rate, one)
    else:
        seconds, lat = await run_queue(n, args.concurrency, one)
    cpu = (time.process_time() - cpu0) / seconds
    check = "-" if campaign is None else await check_draws(svc, campaign, n, "no-stock" not in target)
    if batcher is not None:
        check += f"; {batcher.batches} transactions, mean batch {n / max(batcher.batches, 1):.1f}"
    if target == "paced-keyword":
        wins = sum(r == WIN_TEXT for r in replies)
        check += f"; passive replies {len(replies)}/{n}, win texts {wins}"
        check = check.replace("OK:", "FAIL:", 1) if wins != n else check
    q = statistics.quantiles(lat, n=100)
    return Row(db, target, n, seconds, q[49] * 1000, q[98] * 1000, check, cpu)


async def run_db(db: str, url: str, args: argparse.Namespace) -> list[Row]:
    settings = build_settings(
        {"database": {"url": url, "pool_size": args.concurrency}, "content_dir": str(ROOT / "content")}, env={}
    )
    engine = make_engine(settings.database)
    svc = Services(settings, SystemClock(), random.Random(1), load_content(ROOT / "content"))
    svc.sessions = sessionmaker(engine)
    rows: list[Row] = []
    try:
        now = svc.clock.now()
        async with svc.sessions() as s, s.begin():
            values = [{"openid": f"b{i}", "created_at": now, "updated_at": now} for i in range(args.draws)]
            await s.execute(insert(Customer), values)
            customers = list((await s.scalars(select(Customer.id).order_by(Customer.id))).all())
        for warm in ("draw-hot", "batched-hot"):  # warm-up, not reported
            await measure(svc, db, warm, customers[: args.warmup], args)
        for target in args.targets:
            some = customers[: args.keyword_draws] if target == "paced-keyword" else customers
            rows.append(await measure(svc, db, target, some, args))
            print(fmt(rows[-1]), file=sys.stderr)
    finally:
        await engine.dispose()
    return rows


def fmt(r: Row) -> str:
    return (
        f"{r.db:<9}{r.target:<17}{r.rate:>7.0f}/s  p50 {r.p50_ms:7.1f} ms  p99 {r.p99_ms:7.1f} ms  "
        f"cpu {r.cpu:4.2f}  load {os.getloadavg()[0]:.1f}  {r.check}"
    )


def table(rows: list[Row]) -> str:
    base = {r.db: r.rate for r in rows if r.target == "insert"}
    lines = [
        "| database | target | draws | seconds | draws/s | vs insert | p50 ms | p99 ms | bench CPU | check |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        ratio = f"{100 * r.rate / base[r.db]:.0f}%" if r.db in base else "-"
        lines.append(
            f"| {r.db} | {r.target} | {r.draws} | {r.seconds:.2f} | {r.rate:,.0f} | {ratio} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.cpu:.2f} | {r.check} |"
        )
    return "\n".join(lines)


def section(rows: list[Row], argv: list[str], args: argparse.Namespace) -> str:
    import sqlite3

    import sqlalchemy

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            START,
            f"## Lottery draws, run of {when}",
            "",
            f"Command: `.venv/bin/python bench/draws.py {' '.join(argv)}`",
            "",
            f"- machine: {os.cpu_count()} CPUs, {platform.platform()}; Python {platform.python_version()}, "
            f"SQLAlchemy {sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}; one process, no CPU pinning; "
            f"load average at the end {os.getloadavg()[0]:.1f} (other work was running on the machine)",
            "- one customer per draw; `draw-*`: a transaction per draw (`run_action` → `lottery.draw.draw`);"
            " `batched-*`: `handlers.interactions.lottery.batch`; closed-loop workers pull from one queue;"
            f" `paced-*`: open loop at {args.rate:.0f}/s; `bench CPU`: this process's CPU time / wall time",
            "",
            table(rows),
            NOTES,
            END,
        ]
    )


def write_results(text_: str) -> None:
    current = RESULTS.read_text(encoding="utf-8")
    if START in current and END in current:
        head, rest = current.split(START, 1)
        current = head + text_ + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text_ + "\n"
    RESULTS.write_text(current, encoding="utf-8")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=3000, help="draws per target (default 3000)")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent workers and pool size (default 32)")
    p.add_argument("--warmup", type=int, default=200, help="draws before measuring (default 200)")
    p.add_argument("--dbs", default="sqlite,postgres", help="sqlite,postgres")
    p.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_lottery_bench")
    p.add_argument("--targets", default=",".join(TARGETS), type=lambda v: v.split(","))
    p.add_argument("--keyword-draws", type=int, default=1000, help="messages of paced-keyword (default 1000)")
    p.add_argument("--rate", type=float, default=500.0, help="offered draws/s of the paced targets (default 500)")
    p.add_argument("--max-batch", type=int, default=MAX_BATCH, help=f"batched targets (default {MAX_BATCH})")
    p.add_argument("--write", action="store_true", help="record the run in bench/RESULTS.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for db in args.dbs.split(","):
            url = prepare(db, args.pg_url, Path(tmp))
            rows += asyncio.run(run_db(db, url, args))
    print(table(rows))
    if args.write:
        write_results(section(rows, argv, args))
    return 1 if any(r.check.startswith("FAIL") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
