"""Application factory: one owner per resource, torn down in the agreed order.

``cleanup_ctx`` entries are set up in order and torn down in reverse, so the order below gives
shutdown = stop intake (aiohttp closes the listener first) → background workers (sweeper,
dispatcher drain, inbox writer) → outbox → platform HTTP client → database engine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.alerts import FailureAlerts
from bot.clock import Clock, SystemClock
from bot.config import Settings, secret_values
from bot.content import Content
from bot.content_reload import ContentReloader
from bot.content_runtime import empty_content, load_runtime_content
from bot.db.engine import make_engine, sessionmaker
from bot.db.gate import gate_of
from bot.db.synced import RemoteIdSnapshot
from bot.dispatcher import Dispatcher, Router
from bot.drip_worker import DripWorker
from bot.h5 import add_h5_routes
from bot.inbox import ReceiptWriter, Sweeper
from bot.inbox_sql import open_sink
from bot.instances import Instances
from bot.metrics import Metrics
from bot.ops import add_ops_routes
from bot.outbox import OutboxWorker, PlatformCaller
from bot.periodic import Job, PeriodicJobs
from bot.platform.mp import MpClient
from bot.platform.tokens import DbTokenStore, RedisTokenStore, TokenStore
from bot.platform.wecom import WeComClient
from bot.scheduler import Scheduler
from bot.sync.media import MediaRefresher
from bot.transport import MpEndpoint, WeComEndpoint, add_callback_routes
from bot.webhooks_in import add_webhook_routes
from bot.wechat import EnvelopeCrypto

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the running app owns, reachable from handlers as ``ctx.services``."""

    settings: Settings
    clock: Clock
    rng: random.Random
    metrics: Metrics = field(default_factory=Metrics)
    engine: AsyncEngine | None = None
    instances: Instances | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    http: aiohttp.ClientSession | None = None
    clients: dict[str, PlatformCaller] = field(default_factory=dict)
    outbox: OutboxWorker | None = None
    writer: ReceiptWriter | None = None
    dispatcher: Dispatcher | None = None
    alerts: FailureAlerts | None = None  # a receipt that ends failed: log, metric, alert hook
    sweeper: Sweeper | None = None
    drips: DripWorker | None = None
    scheduler: Scheduler | None = None
    reloader: ContentReloader | None = None
    content: Content = field(default_factory=lambda: empty_content("."))
    # Uploaded media ids for door actions, which must not read the database (bot/door.py).
    media_ids: RemoteIdSnapshot = field(default_factory=RemoteIdSnapshot)
    extras: dict[str, Any] = field(default_factory=dict)


SERVICES = web.AppKey("services", Services)


def default_routers() -> list[Router]:
    from handlers import all_routers

    return all_routers()


def default_jobs() -> list[Job]:
    from handlers import all_jobs

    return all_jobs()


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    routers: Iterable[Router] | None = None,
) -> web.Application:
    services = Services(
        settings=settings,
        clock=clock or SystemClock(),
        rng=rng or random.Random(secrets.randbits(64)),
        content=load_runtime_content(settings.content_dir),
    )
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[SERVICES] = services
    services.reloader = ContentReloader(services)
    chosen = list(routers) if routers is not None else default_routers()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_platform_clients)
    app.cleanup_ctx.append(_alerts)
    app.cleanup_ctx.append(_outbox)
    app.cleanup_ctx.append(lambda a: _intake(a, chosen))
    if routers is None:  # the full application: group-post schedules and the handlers' periodic jobs too
        app.cleanup_ctx.append(_scheduler)
        app.cleanup_ctx.append(lambda a: PeriodicJobs(a[SERVICES], default_jobs()).cleanup_ctx())
    app.cleanup_ctx.append(lambda a: MediaRefresher(a[SERVICES]).cleanup_ctx())
    common: dict[str, Any] = {
        "intake": services,
        "max_body": settings.server.max_body_bytes,
        "body_timeout": settings.server.body_timeout_seconds,
    }
    wecom, mp = _wecom_endpoint(settings, common), _mp_endpoint(settings, common)
    add_callback_routes(app, settings.server.wecom_path, settings.server.mp_path, wecom, mp)
    add_ops_routes(app, services)
    app.on_startup.append(_tune_gc)
    if settings.server.session_secret:  # the H5 pages (issue 5) need a key to sign sessions
        add_h5_routes(app, services)
    add_webhook_routes(app, services)
    return app


async def _tune_gc(_: web.Application) -> None:
    """Move start-up objects (modules, content, settings) out of the collector's sight, and collect the
    young generation less often: full collections over them were the long tail of callback latency."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


async def _database(app: web.Application) -> AsyncIterator[None]:
    s = app[SERVICES]
    s.engine = make_engine(s.settings.database)
    s.sessions = sessionmaker(s.engine)
    s.instances = Instances(s.engine, s.settings.instances)
    await s.instances.register()  # frees a killed predecessor's receipts and calls before intake opens
    s.instances.start()
    yield
    await s.instances.stop()  # last: whatever is still held becomes free for the other replicas at once
    await s.engine.dispose()


async def _token_store(s: Services) -> tuple[TokenStore, Any]:
    url = s.settings.redis.url.get()
    if url:
        import redis.asyncio as redis

        # A Redis that stops answering must fail a call in seconds (the outbox retries before the row's
        # deadline), never hang it.
        client = redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return RedisTokenStore(client, s.clock), client
    assert s.sessions is not None
    return DbTokenStore(s.sessions, s.clock), None


async def _platform_clients(app: web.Application) -> AsyncIterator[None]:
    s = app[SERVICES]
    s.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    store, redis_client = await _token_store(s)
    if s.settings.wecom.corp_id:
        s.clients["wecom"] = WeComClient(s.http, s.settings.wecom, store, s.clock)
    if s.settings.official_account.app_id:
        s.clients["mp"] = MpClient(s.http, s.settings.official_account, store, s.clock)
    if "wecom" in s.clients:  # group robot webhooks: keys live in a secret file, looked up at call time
        from handlers.group_sop_runtime import robot_client, robot_keys_path

        s.clients["robot"] = robot_client(s.clients["wecom"], robot_keys_path(s.settings))
    yield
    await s.http.close()
    if redis_client is not None:
        await redis_client.aclose()


async def _alerts(app: web.Application) -> AsyncIterator[None]:
    """Set up before the workers that fail receipts, torn down after them: their last alerts still go out."""
    s = app[SERVICES]
    cfg = s.settings.alerts
    s.alerts = FailureAlerts(cfg.url.get(), s.metrics, s.clock, secret_values(s.settings), cfg.timeout_seconds)
    yield
    await s.alerts.close(cfg.timeout_seconds)


async def _outbox(app: web.Application) -> AsyncIterator[None]:
    s = app[SERVICES]
    assert s.engine is not None and s.instances is not None
    from handlers.group_sop_runtime import group_task_reconcilers  # asks the platform before any re-send

    s.outbox = OutboxWorker(
        s.engine, s.clients, s.clock, s.settings.outbox, s.metrics, s.instances,
        reconcilers=group_task_reconcilers(s),
    )  # fmt: skip
    s.outbox.start()
    yield
    await s.outbox.stop(s.settings.server.shutdown_grace_seconds)


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Cron/calendar group posts (APScheduler, rebuilt from content at start-up) and their follow-ups."""
    from handlers.group_sop_runtime import install_group_sop

    s = app[SERVICES]
    scheduler = Scheduler(s.settings.tz, s.clock, misfire_grace=s.content.budget.missed_after)
    s.scheduler = scheduler
    install_group_sop(scheduler, s)
    if s.reloader is not None:  # a content reload rebuilds the group-post jobs from the new calendar
        s.reloader.hooks.append(lambda: install_group_sop(scheduler, s))
    scheduler.start()
    yield
    await s.scheduler.stop(s.settings.server.shutdown_grace_seconds)


async def _intake(app: web.Application, routers: list[Router]) -> AsyncIterator[None]:
    s = app[SERVICES]
    assert s.engine is not None and s.sessions is not None and s.outbox is not None and s.instances is not None
    cfg = s.settings
    from handlers.drip_steps import run_step  # handlers depend on bot, so the step runner is injected

    s.drips = DripWorker(s.sessions, cfg, s.clock, s.rng, s, run_step, s.outbox.notify)
    s.dispatcher = Dispatcher(
        routers, s.sessions, cfg, s.clock, s.rng, s.metrics, s.outbox.notify, s, on_drips=s.drips.wake
    )
    s.outbox.result_sink = s.dispatcher.complete_call
    s.drips.start()
    # Loaded at once, then kept fresh; until loaded a welcome with attachments is decided by its handler.
    snapshot = asyncio.create_task(s.media_ids.run(s.sessions), name="media-id-snapshot")
    if s.reloader is not None:
        s.reloader.hooks.append(s.media_ids.poke)
    s.writer = ReceiptWriter(
        # one writer: a second PostgreSQL connection pipelining batches measured worse (bench/RESULTS.md)
        [open_sink(cfg.database.url.get(), gate_of(s.engine))],
        s.clock,
        s.instances.id,
        cfg.inbox.batch_max,
        wants=lambda event: bool(s.dispatcher and s.dispatcher.handlers_for(event)),
        door=s.dispatcher.door_calls,
        on_outbox=s.outbox.notify,
    )
    s.writer.start()
    s.sweeper = Sweeper(
        s.engine, s.clock, s.instances, cfg.inbox.sweep_interval_seconds, s.dispatcher.submit,
        s.dispatcher.in_flight_ids, on_failed=s.alerts.receipt_failed if s.alerts is not None else None,
    )  # fmt: skip
    s.sweeper.start()
    yield
    await s.drips.stop()
    await s.sweeper.stop()
    await s.writer.stop()
    await s.dispatcher.drain(cfg.server.shutdown_grace_seconds)
    s.writer = None
    snapshot.cancel()
    await asyncio.wait([snapshot], timeout=1.0)  # a read it was cancelled in must not hold up shutdown


def _wecom_endpoint(cfg: Settings, common: dict[str, Any]) -> WeComEndpoint | None:
    w = cfg.wecom
    if not w.callback_enabled:
        return None
    crypto = EnvelopeCrypto(w.token.get(), w.encoding_aes_key.get(), w.corp_id, work=True)
    return WeComEndpoint(crypto, **common)


def _mp_endpoint(cfg: Settings, common: dict[str, Any]) -> MpEndpoint | None:
    oa = cfg.official_account
    if not oa.callback_enabled:
        return None
    crypto = None
    if oa.encoding_aes_key:
        crypto = EnvelopeCrypto(oa.token.get(), oa.encoding_aes_key.get(), oa.app_id, work=False)
    return MpEndpoint(
        token=oa.token.get(),
        crypto=crypto,
        allow_plain=oa.allow_plain,
        reply_budget=cfg.server.reply_budget_seconds,
        **common,
    )
