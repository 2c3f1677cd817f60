"""Running reconciliation: on demand (``siyu-bot reconcile``), nightly (``[reconcile] nightly_at``), and the
record of each run (``siyu-bot reconcile --history``).

The nightly run is a worker of the growth feature: it looks at the injected clock every minute (of
simulated time on a sped-up clock) and runs once when the local time passes ``nightly_at``. The run's
row is claimed with a unique ``slot`` (``nightly:<local date>``), so with several replicas one runs it;
a run that failed (a platform error) is recorded as failed and waits for the next night or a
``siyu-bot reconcile``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, time, timedelta, tzinfo
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.background import Background
from bot.config import Settings
from bot.db.upsert import insert_ignore
from bot.feature import Feature, routers_of
from bot.platform import MpClient, PlatformError, WeComClient
from bot.services import Services
from bot.sim_clock import real_seconds
from handlers.growth.reconcile import Found, Reconciliation, summary
from handlers.growth.reconcile_tables import ReconcileRun

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0  # how often (in the clock's time) the nightly worker looks whether its hour passed


async def _claim(services: Services, trigger: str, slot: str | None) -> int | None:
    """A new run row; None when ``slot`` was claimed before (that night's run happened elsewhere)."""
    values = {
        "slot": slot, "trigger": trigger, "started_at": services.clock.now(), "state": "running",
        "customers_new": 0, "customers_lost": 0, "members_joined": 0, "members_left": 0, "tags_changed": 0,
        "followers_new": 0, "followers_lost": 0, "preexisting": 0,
    }  # fmt: skip
    async with services.sessions() as session, session.begin():
        if slot is not None:
            if not await insert_ignore(session, ReconcileRun, values, ["slot"]):
                return None
            return await session.scalar(select(ReconcileRun.id).where(ReconcileRun.slot == slot))
        run = ReconcileRun(**values)
        session.add(run)
        await session.flush()
        return run.id


async def _finish(services: Services, run_id: int, found: Found, state: str, error: str | None = None) -> None:
    async with services.sessions() as session, session.begin():
        run = await session.get(ReconcileRun, run_id)
        assert run is not None
        for name, value in found.counts().items():
            setattr(run, name, value)
        run.state, run.error, run.finished_at = state, error, services.clock.now()


def _clients(services: Services) -> tuple[WeComClient | None, MpClient | None]:
    wecom, mp = services.clients.get("wecom"), services.clients.get("mp")
    return (
        wecom if isinstance(wecom, WeComClient) and services.settings.wecom.secret else None,
        mp if isinstance(mp, MpClient) and services.settings.official_account.app_secret else None,
    )


async def reconcile_once(
    services: Services, trigger: str, slot: str | None = None, out: TextIO | None = None
) -> Found | None:
    """One reconciliation, recorded; None when ``slot`` already ran. Raises what the platform raised
    (the run is recorded as failed, with what it had found until then)."""
    run_id = await _claim(services, trigger, slot)
    if run_id is None:
        return None
    wecom, mp = _clients(services)
    reconciliation = Reconciliation(services, wecom, mp, out)
    try:
        found = await reconciliation.run()
    except Exception as exc:
        await _finish(services, run_id, reconciliation.found, "failed", f"{type(exc).__name__}: {exc}"[:500])
        raise
    await _finish(services, run_id, found, "done")
    return found


def nightly_slot(nightly_at: str, last: datetime, now: datetime, tz: tzinfo) -> str | None:
    """``nightly:<date>`` when the local time ``nightly_at`` (HH:MM) of some day fell in ``(last, now]``
    (the latest such day), else None."""
    hour, minute = (int(p) for p in nightly_at.split(":"))
    local_now = now.astimezone(tz)
    day = local_now.date()
    at = datetime.combine(day, time(hour, minute), local_now.tzinfo)
    if at > local_now:
        day -= timedelta(days=1)
        at = datetime.combine(day, time(hour, minute), local_now.tzinfo)
    return f"nightly:{day.isoformat()}" if at > last else None


async def nightly(services: Services) -> AsyncIterator[None]:
    """The growth feature's worker: reconcile once a night at ``[reconcile] nightly_at`` (when enabled)."""
    config = services.settings.reconcile
    if not config.nightly:
        yield
        return
    last = services.clock.now()

    async def check() -> None:
        nonlocal last
        now = services.clock.now()
        slot = nightly_slot(config.nightly_at, last, now, services.settings.tz)
        last = now
        if slot is not None:
            found = await reconcile_once(services, "nightly", slot)
            if found is not None:
                log.info("%s", summary(found))

    background = Background("reconcile")
    loop = background.every("nightly", lambda: real_seconds(services.clock, CHECK_SECONDS), check)
    services.wake_hooks.append(loop.wake)
    yield
    services.wake_hooks.remove(loop.wake)
    await background.stop()


async def history(sessions: async_sessionmaker[AsyncSession], limit: int) -> list[ReconcileRun]:
    async with sessions() as session:
        rows = await session.scalars(select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(limit))
        return list(rows.all())


def render_history(runs: list[ReconcileRun], tz: tzinfo) -> str:
    if not runs:
        return "(no reconciliation yet)"
    lines = ["started              trigger  state    new  lost  joined  left  tags  followers+  followers-  before"]
    for r in runs:
        started = r.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{started}  {r.trigger:<7}  {r.state:<7}  {r.customers_new:>3}  {r.customers_lost:>4}  "
            f"{r.members_joined:>6}  {r.members_left:>4}  {r.tags_changed:>4}  {r.followers_new:>10}  "
            f"{r.followers_lost:>10}  {r.preexisting:>6}" + (f"  {r.error}" if r.error else "")
        )
    return "\n".join(lines)


async def reconcile_command(settings: Settings, features: Sequence[Feature], out: TextIO) -> int:
    """``siyu-bot reconcile``: 0 when complete, 1 when a platform call failed (nothing after it was
    compared; run it again), 2 when neither WeCom nor the Official Account is configured. The app runs
    while it works (domain events are heard, queued platform calls go out) and stops after; a drip step
    it made due is sent by the running server."""
    from aiohttp import web

    from bot.app import SERVICES, build_app

    w, m = settings.wecom, settings.official_account
    if not (w.corp_id and w.secret) and not (m.app_id and m.app_secret):
        print("error: neither [wecom] corp_id/secret nor [official_account] app_id/app_secret is set", file=out)
        return 2
    # Every feature's handlers (domain events are heard) and the outbox, but no workers, jobs or scheduled
    # posts: those are the running server's.
    app = build_app(settings, features, routers=routers_of(list(features)))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        services = app[SERVICES]
        try:
            found = await reconcile_once(services, "command", out=out)
        except PlatformError as exc:
            print(f"error: {exc}; run `siyu-bot reconcile` again", file=out)
            return 1
        assert found is not None
        print(summary(found), file=out)
        await services.outbox.settle()
        await services.outbox.run_due()
    finally:
        await runner.cleanup()
    return 0


async def history_command(settings: Settings, limit: int, out: TextIO) -> int:
    """``siyu-bot reconcile --history``: the latest runs, newest first."""
    from bot.db.engine import make_engine, sessionmaker

    engine = make_engine(settings.database)
    try:
        runs = await history(sessionmaker(engine), limit)
    finally:
        await engine.dispose()
    print(render_history(runs, settings.tz), file=out)
    return 0
