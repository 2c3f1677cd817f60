"""SOP engine benchmark (issue 4): drip enrolment throughput, group-post fires, the due-step poll at 1M rows.

    .venv/bin/python bench/sop.py [--enrol 10000 --per-txn 2000 --steps 1000000 --pg-url URL --write]

Issue 4's acceptance: "scheduling 10,000 drip enrolments and 1,000 group posts; poll cost with 1,000,000
pending steps stays under 50 ms per poll on PostgreSQL (an index, not a scan)".

1. **Enrolments** (SQLite temp file and PostgreSQL): ``handlers.sop.drip_enrol.enrol`` of ``--enrol`` customers
   into the shipped ``mp_48h`` drip (3 steps each), the customers loaded and enrolled inside transactions of
   ``--batch`` (100); then ``--per-txn`` enrolments one per transaction (what a real follow callback
   does). Baseline in the same run: a plain SQLAlchemy core ``executemany`` INSERT of the same enrolment
   and step rows in one transaction.
2. **Group posts** (both backends): ``GroupSop.fire`` in a ``bot.rig.Rig`` (real app, simulator) on a
   frozen clock (Monday 10:00 Asia/Shanghai), 1,000 known groups of 20 owners (50 each). Scenario
   *fan-out*: one daily ``wecom_task_group`` post to all 1,000 groups (one fire, one ``add_msg_template``
   per owner). Scenario *per-group*: 1,000 posts each targeting one group (``app_to_owner``, categories
   cycling 3:3:3:1) — 1,000 fires. The outbox is left unprocessed while fires are timed (the outbox poll
   is stopped and notifications dropped); afterwards every fire is repeated (must answer ``already``) and
   the outbox is drained through the simulator to check one platform call per outbox row.
3. **Poll cost** (PostgreSQL; SQLite for orientation): ``--steps`` pending ``drip_steps`` rows (with their
   customers and enrolments) loaded with ``INSERT … SELECT generate_series`` (a recursive CTE on SQLite),
   ``--due`` of them due now, the rest over the next 48 h; ``ANALYZE``. Timed: ``DripWorker._claim``
   (the claim transaction: SELECT … FOR UPDATE SKIP LOCKED + UPDATE + COMMIT) with 100 due rows
   (claims reset between polls, untimed) and with none due; the full ``run_due(limit=100)`` over the due
   rows (half the customers have an open Official Account window and get a queued send, half wait);
   the claim again with those waiting rows in the index; and the claim with index scans disabled
   (``enable_indexscan``/``enable_bitmapscan``/``enable_indexonlyscan`` off) as the no-index baseline.
   The claim SELECT's ``EXPLAIN (ANALYZE, BUFFERS)`` (SQLite: ``EXPLAIN QUERY PLAN``) is printed and
   must use ``ix_drip_steps_due_pending`` without a sequential scan of ``drip_steps``.

Machine CPU load is read from ``/proc/stat`` during each phase (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from handlers.sop.content import sop_of

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from common import (  # noqa: E402
    RESULTS,
    CpuMeter,
    command_line,
    load_average,
    machine_lines,
    make_settings,
    pct,
    prepare_db,
    utc_stamp,
    write_results,
)

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/siyu_bench_sop"
BACKENDS = ("sqlite", "postgres")
START, END = "<!-- bench:sop:start -->", "<!-- bench:sop:end -->"
DRIP = "mp_48h"
INDEX = "ix_drip_steps_due_pending"
POLL_LIMIT_MS = 50.0
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 Asia/Shanghai: outside quiet hours
OWNERS = tuple(f"owner{n:02d}" for n in range(20))
GROUPS_PER_OWNER = 50
NO_INDEX = {"enable_indexscan": "off", "enable_bitmapscan": "off", "enable_indexonlyscan": "off"}
PACKAGES = ("SQLAlchemy", "aiosqlite", "asyncpg")


# --- small helpers -------------------------------------------------------------------------------


def services_for(settings: Any, clock: Any, engine: Any) -> Any:
    """The app's services without the app: what handlers reach through ``ctx.services``."""
    from bot.db.engine import sessionmaker
    from bot.services import Services
    from handlers.content import load_runtime_content

    services = Services(settings, clock, random.Random(7), load_runtime_content(settings.content_dir))
    services.engine, services.sessions = engine, sessionmaker(engine)
    return services


class Timer:
    def __init__(self) -> None:
        self.ms: list[float] = []

    @contextlib.asynccontextmanager
    async def __call__(self) -> Any:
        t = time.perf_counter()
        yield
        self.ms.append((time.perf_counter() - t) * 1000)


def stats(ms: list[float]) -> str:
    return f"{pct(ms, 50):.1f} / {pct(ms, 95):.1f} / {max(ms, default=math.nan):.1f}"


# --- 1. enrolments -------------------------------------------------------------------------------


@dataclass
class EnrolRow:
    backend: str
    mode: str
    enrolments: int
    txns: int
    seconds: float
    steps: int
    cpu: str

    @property
    def rate(self) -> float:
        return self.enrolments / self.seconds if self.seconds else math.nan


async def _clear_drips(engine: Any) -> None:
    from sqlalchemy import text

    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("TRUNCATE drip_steps, drip_enrolments RESTART IDENTITY"))
        else:
            await conn.execute(text("DELETE FROM drip_steps"))
            await conn.execute(text("DELETE FROM drip_enrolments"))


async def _count(engine: Any, table: str, where: str = "") -> int:
    from sqlalchemy import text

    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table} {where}"))).scalar() or 0)


async def enrol_case(backend: str, args: argparse.Namespace, workdir: Path) -> list[EnrolRow]:
    from sqlalchemy import insert, select

    from bot.clock import FrozenClock
    from bot.context import Context
    from bot.db.engine import make_engine
    from bot.db.models import Customer
    from handlers.sop.drip_enrol import enrol
    from handlers.sop.tables import DripEnrolment, DripStepRun

    url = await prepare_db(backend, workdir, args.pg_url, "enrol")
    settings = make_settings(workdir, url)
    clock = FrozenClock(T0)
    engine = make_engine(settings.database)
    services = services_for(settings, clock, engine)
    drip = sop_of(services.content).drip(DRIP)
    assert drip is not None and len(drip.steps) == 3, "the shipped mp_48h drip has 3 steps"
    n, per = args.enrol, min(args.per_txn, args.enrol)
    rows: list[EnrolRow] = []
    try:
        async with engine.begin() as conn:  # customers exist before they enrol (untimed)
            await conn.execute(
                insert(Customer.__table__),
                [
                    {"openid": f"obench{i:07d}", "created_at": T0, "updated_at": T0, "wecom_friend": False,
                     "mp_follower": True, "purchase_count": 0, "total_spent_cents": 0}
                    for i in range(n)
                ],
            )  # fmt: skip
            ids = list((await conn.execute(select(Customer.id).order_by(Customer.id))).scalars())

        # handler path, transactions of --batch
        meter, t = CpuMeter(), time.perf_counter()
        for i in range(0, n, args.batch):
            chunk = ids[i : i + args.batch]
            async with services.sessions() as session, session.begin():
                ctx = Context(session, settings, clock, services.rng, None, services)
                customers = (await session.scalars(select(Customer).where(Customer.id.in_(chunk)))).all()
                for customer in customers:
                    assert await enrol(ctx, customer, drip, T0)
        rows.append(EnrolRow(backend, f"enrol(), {args.batch} per transaction", n, math.ceil(n / args.batch),
                             time.perf_counter() - t, await _count(engine, "drip_steps"), meter.text()))  # fmt: skip

        # handler path, one per transaction (as a follow callback does)
        await _clear_drips(engine)
        meter, t = CpuMeter(), time.perf_counter()
        for cid in ids[:per]:
            async with services.sessions() as session, session.begin():
                ctx = Context(session, settings, clock, services.rng, None, services)
                customer = await session.get(Customer, cid)
                assert customer is not None and await enrol(ctx, customer, drip, T0)
        rows.append(EnrolRow(backend, "enrol(), 1 per transaction", per, per, time.perf_counter() - t,
                             await _count(engine, "drip_steps"), meter.text()))  # fmt: skip

        # baseline: plain executemany of the same rows, one transaction
        await _clear_drips(engine)
        tz = settings.tz
        meter, t = CpuMeter(), time.perf_counter()
        async with engine.begin() as conn:
            table = DripEnrolment.__table__
            enrol_ids = list(
                (
                    await conn.execute(
                        insert(table).returning(table.c.id, sort_by_parameter_order=True),
                        [{"customer_id": cid, "drip_id": DRIP, "anchor_at": T0, "state": "active"} for cid in ids],
                    )
                ).scalars()
            )
            await conn.execute(
                insert(DripStepRun.__table__),
                [
                    {"enrolment_id": eid, "customer_id": cid, "drip_id": DRIP, "step_id": step.id,
                     "due_at": step.delay.due_after(T0, tz), "state": "pending"}
                    for eid, cid in zip(enrol_ids, ids, strict=True)
                    for step in drip.steps
                ],
            )  # fmt: skip
        rows.append(EnrolRow(backend, "baseline: core executemany, 1 transaction", n, 1, time.perf_counter() - t,
                             await _count(engine, "drip_steps"), meter.text()))  # fmt: skip
    finally:
        await engine.dispose()
    return rows


# --- 2. group posts ------------------------------------------------------------------------------


@dataclass
class GroupRow:
    backend: str
    scenario: str
    fires: int
    group_posts: int
    seconds: float
    targets: int
    outbox: int
    ledger: int
    refires_already: int
    delivered: int
    duplicates: int
    drain_s: float
    cpu: str

    @property
    def ok(self) -> bool:
        return self.refires_already == self.fires and self.duplicates == 0 and self.delivered == self.outbox


class _NoNotify:
    """Stands in for the outbox worker during the timed fires: rows are written, nothing is sent."""

    def notify(self, calls: list[tuple[int, int]]) -> None:
        return None


async def group_case(backend: str, args: argparse.Namespace, workdir: Path) -> list[GroupRow]:
    from sqlalchemy import func, select

    from bot.clock import FrozenClock
    from bot.content.schedule import CronSchedule
    from bot.db.models import OutboxCall
    from bot.feature import routers_of
    from bot.rig import Rig
    from handlers import features
    from handlers.growth.simulated_corp import seed_corp
    from handlers.growth.tables import GroupChat
    from handlers.sop import group_sop as gsop
    from handlers.sop.content.model import Category, Delivery, GroupPost, Targets
    from handlers.sop.tables import ContactLedger, GroupFire

    url = await prepare_db(backend, workdir, args.pg_url, "groups")
    settings = make_settings(workdir, url)
    clock = FrozenClock(T0)
    rig = await Rig.start(
        settings,
        clock,
        features(),
        rng=random.Random(7),
        routers=[*routers_of(features()), gsop.router],
        prepare=seed_corp,
    )
    out: list[GroupRow] = []
    try:
        s = rig.services
        assert s.sessions is not None and s.outbox is not None
        await s.outbox.stop(1.0)  # the outbox stays unprocessed while fires are timed
        chats: list[str] = []
        async with s.sessions() as session, session.begin():
            for owner in OWNERS:
                for n in range(GROUPS_PER_OWNER):
                    cid, name = f"wr{owner}{n:04d}".ljust(30, "A"), f"山野小食福利群{owner}-{n}"
                    rig.state.add_group(owner, name=name, chat_id=cid)
                    session.add(GroupChat(chat_id=cid, name=name, owner=owner, updated_at=T0))
                    chats.append(cid)
        cats = [Category.MARKETING] * 3 + [Category.INTERACTION] * 3 + [Category.CARE] * 3 + [Category.DAILY]
        fan_out = GroupPost("bench_daily", None, CronSchedule("0 10 * * *"), Targets(names=("山野小食福利群*",)),
                            Delivery.WECOM_TASK_GROUP, Category.CARE, "group_snack_tips", True)  # fmt: skip
        per_group = [
            GroupPost(f"bench_g{i:04d}", None, CronSchedule("0 10 * * *"), Targets(chat_ids=(cid,)),
                      Delivery.APP_TO_OWNER, cats[i % len(cats)], "group_snack_tips", True)
            for i, cid in enumerate(chats)
        ]  # fmt: skip
        sections = dict(s.content.sections)
        sections["group_posts"] = (fan_out, *per_group)
        s.content = dataclasses.replace(s.content, sections=sections)
        quiet = dataclasses.replace(s, outbox=_NoNotify())
        engine = quiet.engine

        async def scenario(name: str, posts: list[GroupPost], group_posts: int) -> None:
            sop = gsop.GroupSop(quiet)
            ids = [p.id for p in posts]
            meter, t = CpuMeter(), time.perf_counter()
            for post in posts:
                assert await sop.fire(post.id, T0) == "done", post.id
            seconds, cpu = time.perf_counter() - t, meter.text()
            already = sum([await sop.fire(p.id, T0) == "already" for p in posts])
            async with s.sessions() as session:
                fires = select(GroupFire).where(GroupFire.post_id.in_(ids), GroupFire.target != gsop.MARKER)
                targets = list((await session.scalars(fires)).all())
                keys = {(f.post_id, f.fire_at, f.target) for f in targets}
                outbox_ids = [f.outbox_id for f in targets if f.outbox_id is not None]
                outbox = await session.scalar(
                    select(func.count()).select_from(OutboxCall).where(OutboxCall.id.in_(outbox_ids))
                )
                prefixes = [f"post:{i}" for i in ids]
                ledger = await session.scalar(
                    select(func.count()).select_from(ContactLedger).where(ContactLedger.source.in_(prefixes))
                )
            api = (
                "externalcontact/add_msg_template" if posts[0].delivery is Delivery.WECOM_TASK_GROUP else "message/send"
            )
            before = len(rig.state.calls_to(api))
            t = time.perf_counter()
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline:
                with contextlib.suppress(RuntimeError):  # "did not settle": check the rows and go on
                    await rig.drain(rounds=200)
                if await _count(engine, "outbox", "WHERE state IN ('pending', 'sending')") == 0:
                    break
            drain_s = time.perf_counter() - t
            calls = rig.state.calls_to(api)[before:]
            delivered = sum(1 for c in calls if c.errcode == 0)
            dup = (len(targets) - len(keys)) + max(0, len(calls) - len(outbox_ids))
            out.append(GroupRow(backend, name, len(posts), group_posts, seconds, len(targets), int(outbox or 0),
                                int(ledger or 0), already, delivered, dup, drain_s, cpu))  # fmt: skip
            print(f"    {name}: {len(posts)} fire(s) in {seconds:.2f} s, {len(targets)} targets, "
                  f"outbox {outbox}, delivered {delivered}, dup {dup}", file=sys.stderr)  # fmt: skip

        await scenario("fan-out: 1 post → 1,000 groups / 20 owners (wecom_task_group)", [fan_out], len(chats))
        await scenario("per-group: 1,000 posts × 1 group (app_to_owner, 3:3:3:1)", per_group, len(per_group))
    finally:
        await rig.close()
    return out


# --- 3. poll cost --------------------------------------------------------------------------------


@dataclass
class PollRow:
    backend: str
    what: str
    ms: list[float]
    claimed: str
    cpu: str
    gated: bool = False  # the row the < 50 ms verdict is about


@dataclass
class PollCase:
    backend: str
    steps: int = 0
    due: int = 0
    load_s: float = 0.0
    plan: str = ""
    plan_noindex: str = ""
    uses_index: bool = False
    rows: list[PollRow] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)


def _load_sql(backend: str, steps: int, due: int) -> list[str]:
    """Customers, enrolments and ``steps`` pending step rows; the first ``due`` enrolments' step 1 is due in
    the 10 minutes before T0 (half of those customers with an open Official Account window), everything
    else anchored over the next 48 hours."""
    e = math.ceil(steps / 3)
    t0 = "'2026-11-23 02:00:00+00'::timestamptz" if backend == "postgresql" else "'2026-11-23 02:00:00.000000'"
    if backend == "postgresql":
        gen = "generate_series(1, {n}) AS g(i)"

        def ts(offset_seconds: str) -> str:
            return f"{t0} + ({offset_seconds}) * interval '1 second'"
    else:
        gen = "(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {n}) SELECT i FROM g) AS g"

        def ts(offset_seconds: str) -> str:
            return f"strftime('%Y-%m-%d %H:%M:%f000', {t0}, ({offset_seconds}) || ' seconds')"

    anchor = f"CASE WHEN i <= {due} THEN -600 + 600.0 * i / {due} ELSE 172800.0 * i / {e} END"
    boolean = ("true", "false") if backend == "postgresql" else ("1", "0")
    step_rows = (
        f"SELECT i, i, '{DRIP}', CAST(s AS VARCHAR), {ts(f'({anchor}) + (s - 1) * 10800')}, "
        f"'pending' FROM {gen.format(n=e)} CROSS JOIN (SELECT 1 AS s UNION ALL SELECT 2 UNION ALL SELECT 3) AS k "
        f"WHERE (i - 1) * 3 + s <= {steps}"
    )
    return [
        "INSERT INTO customers (id, openid, created_at, updated_at, wecom_friend, mp_follower, purchase_count, "
        f"total_spent_cents) SELECT i, 'obench' || i, {t0}, {t0}, {boolean[1]}, {boolean[0]}, 0, 0 "
        f"FROM {gen.format(n=e)}",
        f"INSERT INTO drip_enrolments (id, customer_id, drip_id, anchor_at, state) "
        f"SELECT i, i, '{DRIP}', {ts(anchor)}, 'active' FROM {gen.format(n=e)}",
        f"INSERT INTO drip_steps (enrolment_id, customer_id, drip_id, step_id, due_at, state) {step_rows}",
        "INSERT INTO mp_windows (openid, message_at, message_sent, event_at, event_sent, updated_at) "
        f"SELECT 'obench' || i, {ts('-3600')}, 0, NULL, 0, {t0} FROM {gen.format(n=due)} WHERE i % 2 = 1",
    ]


async def poll_case(backend: str, args: argparse.Namespace, workdir: Path) -> PollCase:
    from sqlalchemy import event, text, update
    from sqlalchemy.ext.asyncio import create_async_engine

    from bot.clock import FrozenClock
    from bot.db.engine import make_engine, sessionmaker
    from handlers.sop.drip_steps import run_step
    from handlers.sop.drip_worker import DripWorker
    from handlers.sop.tables import DripStepRun

    steps = args.steps if backend == "postgres" else args.sqlite_steps
    case = PollCase(backend, steps=steps, due=args.due)
    url = await prepare_db(backend, workdir, args.pg_url, "poll")
    settings = make_settings(workdir, url)
    clock = FrozenClock(T0)
    engine = make_engine(settings.database)
    services = services_for(settings, clock, engine)
    dialect = engine.dialect.name
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if "FROM drip_steps" in statement and "ORDER BY drip_steps.due_at" in statement and not captured:
            captured.append((statement, parameters))

    try:
        meter, t = CpuMeter(), time.perf_counter()
        async with engine.begin() as conn:
            for sql in _load_sql(dialect, steps, args.due):
                await conn.execute(text(sql))
            if dialect == "postgresql":
                for table in ("customers", "drip_enrolments", "drip_steps"):
                    await conn.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                    )
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
        case.load_s = time.perf_counter() - t
        pending = await _count(engine, "drip_steps", "WHERE state = 'pending'")
        due_now = await _count(engine, "drip_steps", f"WHERE due_at <= {_lit(dialect, T0)}")
        print(f"    loaded {pending:,} pending steps ({due_now} due) in {case.load_s:.1f} s ({meter.text()})",
              file=sys.stderr)  # fmt: skip
        assert pending == steps and due_now == args.due, (pending, due_now)

        worker = DripWorker(services.sessions, settings, clock, services.rng, services, run_step, lambda calls: None)
        lease = timedelta(seconds=60)

        async def reset(ids: list[int]) -> None:
            if ids:
                async with services.sessions() as session, session.begin():
                    await session.execute(update(DripStepRun).where(DripStepRun.id.in_(ids)).values(claimed_until=None))

        async def claims(w: DripWorker, now: datetime, polls: int, *, undo: bool) -> tuple[list[float], list[int], str]:
            timer, counts, meter = Timer(), [], CpuMeter()
            for _ in range(polls):
                async with timer():
                    ids = await w._claim(now, now + lease, 100)
                counts.append(len(ids))
                if undo:
                    await reset(ids)
            return timer.ms, counts, meter.text()

        def row(what: str, result: tuple[list[float], list[int], str], gated: bool = False) -> PollRow:
            ms, counts, cpu = result
            claimed = f"{min(counts)}–{max(counts)}" if min(counts) != max(counts) else str(counts[0])
            return PollRow(backend, what, ms, claimed, cpu, gated)

        # the claim query's plan, captured from a real _claim call and explained
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        await reset(await worker._claim(T0, T0 + lease, 100))
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
        case.plan = await explain(engine, *captured[0])
        case.uses_index = INDEX in case.plan and not re.search(r"(Seq Scan on|SCAN) drip_steps(?! USING)", case.plan)

        await claims(worker, T0, 3, undo=True)  # warm caches
        label = f"claim, {args.due} due of {steps:,} pending"
        case.rows.append(row(label, await claims(worker, T0, args.polls, undo=True), gated=True))
        idle = T0 - timedelta(minutes=20)
        case.rows.append(row("claim, nothing due (steady state)", await claims(worker, idle, args.polls, undo=False)))

        if dialect == "postgresql":  # the same query with index scans disabled
            plain = create_async_engine(url, connect_args={"server_settings": NO_INDEX})
            try:
                captured.clear()
                event.listen(plain.sync_engine, "before_cursor_execute", capture)
                slow = DripWorker(
                    sessionmaker(plain), settings, clock, services.rng, services, run_step, lambda c: None
                )
                await reset(await slow._claim(T0, T0 + lease, 100))
                event.remove(plain.sync_engine, "before_cursor_execute", capture)
                case.plan_noindex = await explain(plain, *captured[0])
                n = max(5, args.polls // 5)
                case.rows.append(row(f"baseline no index: claim, {args.due} due", await claims(slow, T0, n, undo=True)))
                case.rows.append(row("baseline no index: claim, nothing due", await claims(slow, idle, n, undo=False)))
            finally:
                await plain.dispose()

        # full run_due on the due rows: claim + run each step in its own transaction
        timer, counts, meter = Timer(), [], CpuMeter()
        for _ in range(math.ceil(args.due / 100)):
            async with timer():
                counts.append(await worker.run_due(limit=100))
        case.rows.append(row("full run_due(limit=100) on due rows", (timer.ms, counts, meter.text())))
        async with engine.connect() as conn:
            res = await conn.execute(
                text("SELECT state, reason IS NOT NULL AND reason LIKE 'waiting%', count(*) FROM drip_steps "
                     f"WHERE due_at <= {_lit(dialect, T0)} GROUP BY 1, 2")
            )  # fmt: skip
            for state, waiting, k in res.all():
                case.outcomes["waiting" if waiting else state] = int(k)
        after = T0 + timedelta(seconds=1)
        waiting = case.outcomes.get("waiting", 0)
        case.rows.append(row(f"claim, {waiting} waiting rows due, none claimable", await claims(
            worker, after, args.polls, undo=False)))  # fmt: skip
    finally:
        await engine.dispose()
    return case


def _lit(dialect: str, at: datetime) -> str:
    if dialect == "postgresql":
        return f"'{at.isoformat()}'::timestamptz"
    return f"'{at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=' ', timespec='microseconds')}'"


async def explain(engine: Any, statement: str, parameters: Any) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL (rolled back: the SELECT takes row locks), EXPLAIN QUERY
    PLAN on SQLite — of the exact statement and parameters the worker sent."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute("EXPLAIN QUERY PLAN " + statement, tuple(parameters)).fetchall()
        return "\n".join(f"{'  ' * (0 if parent == 0 else 1)}{detail}" for _id, parent, _n, detail in rows)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        tx = driver.transaction()
        await tx.start()
        try:
            rows = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
        finally:
            await tx.rollback()
        await conn.rollback()
    return "\n".join(r[0] for r in rows)


# --- report --------------------------------------------------------------------------------------


def enrol_table(rows: list[EnrolRow]) -> str:
    lines = [
        "| backend | mode | enrolments | transactions | step rows | s | enrolments/s | ratio to baseline "
        "| bench / other CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    base = {r.backend: r.rate for r in rows if r.mode.startswith("baseline")}
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.mode} | {r.enrolments:,} | {r.txns:,} | {r.steps:,} | {r.seconds:.2f} "
            f"| {r.rate:,.0f} | {r.rate / base.get(r.backend, math.nan):.2f} | {r.cpu} |"
        )
    return "\n".join(lines)


def group_table(rows: list[GroupRow]) -> str:
    lines = [
        "| backend | scenario | fires | group posts | s | fires/s | group posts/s | targets | outbox rows "
        "| ledger rows | re-fires → already | platform calls after drain (s) | duplicates | bench / other CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.scenario} | {r.fires:,} | {r.group_posts:,} | {r.seconds:.2f} "
            f"| {r.fires / r.seconds:,.1f} | {r.group_posts / r.seconds:,.0f} | {r.targets:,} | {r.outbox:,} "
            f"| {r.ledger:,} | {r.refires_already:,}/{r.fires:,} | {r.delivered:,} ({r.drain_s:.1f}) "
            f"| {r.duplicates} | {r.cpu} |"
        )
    return "\n".join(lines)


def poll_table(cases: list[PollCase]) -> str:
    lines = [
        "| backend | pending steps | measured | polls | claimed per poll | p50 / p95 / max ms | bench / other CPU |",
        "|---|--:|---|--:|--:|--:|--:|",
    ]
    for c in cases:
        for r in c.rows:
            what = f"**{r.what}**" if r.gated else r.what
            lines.append(
                f"| {c.backend} | {c.steps:,} | {what} | {len(r.ms)} | {r.claimed} | {stats(r.ms)} | {r.cpu} |"
            )
    return "\n".join(lines)


def verdicts(cases: list[PollCase], groups: list[GroupRow]) -> list[str]:
    out = []
    for c in cases:
        gated = next(r for r in c.rows if r.gated)
        p95, worst = pct(gated.ms, 95), max(gated.ms)
        good = c.uses_index and worst < POLL_LIMIT_MS
        label = "acceptance" if c.backend == "postgres" else "orientation"
        out.append(
            f"- {c.backend} ({label}), {c.steps:,} pending steps: claim p95 {p95:.1f} ms, max {worst:.1f} ms "
            f"(target < {POLL_LIMIT_MS:.0f} ms per poll), plan uses `{INDEX}`: {'yes' if c.uses_index else 'NO'} "
            f"→ **{'PASS' if good else 'MISS'}**"
        )
    for g in groups:
        if not g.ok:
            out.append(f"- group posts {g.backend} / {g.scenario}: NOT exactly once (see table) → **MISS**")
    return out


def render_section(
    args: argparse.Namespace, argv: list[str], backends: list[str], enrols: list[EnrolRow], groups: list[GroupRow],
    polls: list[PollCase],
) -> str:  # fmt: skip
    cmd = command_line("bench/sop.py", argv)
    plans: list[str] = []
    for c in polls:
        plans += [
            "",
            f"{c.backend}, {c.steps:,} pending, {c.due} due — the claim SELECT as `DripWorker._claim` sent it"
            + (" (`EXPLAIN (ANALYZE, BUFFERS)`):" if c.backend == "postgres" else " (`EXPLAIN QUERY PLAN`):"),
            "",
            "```",
            c.plan,
            "```",
        ]
        if c.plan_noindex:
            plans += ["", "Baseline, index scans disabled:", "", "```", c.plan_noindex, "```"]
    outcomes = "; ".join(f"{c.backend}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.outcomes.items())) for c in polls)
    loads = ", ".join(f"{c.backend} {c.load_s:.0f} s" for c in polls)
    return "\n".join(
        [
            START,
            "## SOP engine (issue 4): drip enrolments, group-post fires, the due-step poll",
            "",
            f"Run of {utc_stamp()}. Command: `{cmd}`",
            "",
            *machine_lines(PACKAGES, args.pg_url if "postgres" in backends else None, load=True),
            f"- SQLite on fresh temporary files, PostgreSQL (`{args.pg_url.rsplit('/', 1)[-1]}`) with its schema reset "
            "and migrated per phase; frozen clock at Monday 10:00 Asia/Shanghai; shipped `content/`",
            "- *bench / other CPU*: this process and the rest of the machine (PostgreSQL, neighbours) in cores, "
            "from `/proc/stat`; the machine's 2 cores are shared with other sessions",
            "",
            "### Enrolments (`handlers.sop.drip_enrol.enrol`, shipped `mp_48h`, 3 steps each)",
            "",
            "Each transaction loads its customers and calls `enrol` (one INSERT … ON CONFLICT DO NOTHING RETURNING",
            "of the enrolment; its 3 step rows held for one `executemany` per transaction before its next statement",
            "or its commit). Baseline: the same enrolment and step rows with SQLAlchemy core `executemany`",
            "(enrolment ids via `RETURNING`) in one transaction.",
            "",
            enrol_table(enrols),
            "",
            "### Group posts (`GroupSop.fire`, Rig, 1,000 groups of 20 owners)",
            "",
            "Fires timed with the outbox **left unprocessed** (outbox poll stopped, notifications dropped): the",
            "platform round trip is not part of a fire. Then every fire is repeated (must answer `already`) and the",
            "outbox is drained through the simulator: *platform calls* = successful calls the simulator recorded",
            "(must equal outbox rows); *duplicates* = repeated (post, fire, target) rows + calls beyond outbox rows.",
            "",
            group_table(groups),
            "",
            f"### Poll cost (`DripWorker`, {INDEX})",
            "",
            f"Load ({loads}): customers, enrolments and pending `drip_steps` by `INSERT … SELECT`; the first",
            f"{args.due} enrolments' step 1 due in the 10 minutes before now, the rest over the next 48 h; `ANALYZE`.",
            "*claim* = `DripWorker._claim(now, now + 60 s, 100)`, the whole claim transaction (PostgreSQL: SELECT …",
            "FOR UPDATE SKIP LOCKED, UPDATE claimed_until, COMMIT; SQLite: one UPDATE … RETURNING); with rows due",
            "the claims are reset between polls (untimed) so every poll claims 100. *full run_due* also runs every",
            "claimed step in its own transaction (budget, window, outbox, ledger): half the due customers have an",
            f"open Official Account window (sent), half wait for one. Outcomes of the due rows: {outcomes}.",
            "",
            poll_table(polls),
            *plans,
            "",
            *verdicts(polls, groups),
            END,
        ]
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--enrol", type=int, default=10_000, help="enrolments per backend (default 10000)")
    p.add_argument("--batch", type=int, default=100, help="enrolments per transaction (default 100)")
    p.add_argument("--per-txn", type=int, default=2_000, help="enrolments one per transaction (default 2000)")
    p.add_argument("--steps", type=int, default=1_000_000, help="pending steps on PostgreSQL (default 1000000)")
    p.add_argument("--sqlite-steps", type=int, default=1_000_000, help="pending steps on SQLite (default 1000000)")
    p.add_argument("--due", type=int, default=1_000, help="steps due now (default 1000)")
    p.add_argument("--polls", type=int, default=50, help="timed polls per measurement (default 50)")
    p.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to drain the outbox (default 60)")
    p.add_argument("--phases", default="enrol,groups,poll", help="comma list from enrol,groups,poll")
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma list from {','.join(BACKENDS)}")
    p.add_argument("--pg-url", default=DEFAULT_PG, help=f"PostgreSQL URL, schema is reset (default {DEFAULT_PG})")
    p.add_argument("--write", action="store_true", help=f"replace the sop section in {RESULTS.name}")
    args = p.parse_args(argv)
    if min(args.enrol, args.batch, args.per_txn, args.steps, args.sqlite_steps, args.polls) < 1 or args.due < 100:
        p.error("counts must be ≥ 1 and --due ≥ 100")
    if args.due > min(args.steps, args.sqlite_steps) // 3:
        p.error("--due must be at most a third of the pending steps")
    return args


async def run_all(
    args: argparse.Namespace, backends: list[str], phases: list[str], workdir: Path
) -> tuple[list[EnrolRow], list[GroupRow], list[PollCase]]:
    enrols: list[EnrolRow] = []
    groups: list[GroupRow] = []
    polls: list[PollCase] = []
    steps: list[tuple[str, Callable[[str], Awaitable[Any]]]] = [
        ("enrol", lambda b: enrol_case(b, args, workdir)),
        ("groups", lambda b: group_case(b, args, workdir)),
        ("poll", lambda b: poll_case(b, args, workdir)),
    ]
    for phase, fn in steps:
        if phase not in phases:
            continue
        for backend in backends:
            print(f"--- {phase} on {backend} (load {load_average()})", file=sys.stderr)
            t = time.monotonic()
            result = await fn(backend)
            if phase == "enrol":
                enrols += result
                for r in result:
                    print(f"    {r.mode}: {r.rate:,.0f} enrolments/s ({r.cpu})", file=sys.stderr)
            elif phase == "groups":
                groups += result
            else:
                polls.append(result)
                for r in result.rows:
                    print(f"    {r.what}: p50/p95/max {stats(r.ms)} ms, claimed {r.claimed}", file=sys.stderr)
            print(f"    ({time.monotonic() - t:.0f} s)", file=sys.stderr)
    return enrols, groups, polls


def main(argv: list[str] | None = None) -> int:
    import logging

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    bad = [b for b in backends if b not in BACKENDS] + [p for p in phases if p not in ("enrol", "groups", "poll")]
    if bad:
        print(f"unknown backend(s)/phase(s): {', '.join(bad)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="siyu-bench-sop-"))
    started = time.monotonic()
    try:
        enrols, groups, polls = asyncio.run(run_all(args, backends, phases, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    section = render_section(args, argv, backends, enrols, groups, polls)
    print(section)
    print(f"total {time.monotonic() - started:.0f} s", file=sys.stderr)
    if args.write:
        write_results(section, START, END)
        print(f"wrote {RESULTS}", file=sys.stderr)
    ok = all(g.ok for g in groups) and all(c.uses_index for c in polls)
    pg = [c for c in polls if c.backend == "postgres"]
    ok = ok and all(max(next(r for r in c.rows if r.gated).ms) < POLL_LIMIT_MS for c in pg)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
