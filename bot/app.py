"""Application factory: the kernel's resources, one owner each, and the features composed onto them.

``cleanup_ctx`` entries are set up in order and torn down in reverse, so the order below gives
shutdown = stop intake (aiohttp closes the listener first) → the features' workers and jobs → the
kernel's background workers (sweeper, dispatcher drain, inbox writer) → outbox → platform HTTP client →
database engine. The kernel knows no feature: ``features`` (``handlers.features()``) bring the routers,
jobs, workers, routes, extra platform callers, reconcilers and receipt sources (bot/feature.py).
"""

from __future__ import annotations

import gc
import logging
import random
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from bot.alerts import FailureAlerts
from bot.clock import Clock, SystemClock
from bot.config import Settings, secret_values
from bot.content import ContentError, Problem
from bot.content_reload import ContentReloader
from bot.content_runtime import load_runtime_content
from bot.db.engine import make_engine, sessionmaker
from bot.db.gate import gate_of
from bot.dispatcher import Dispatcher, Router
from bot.feature import Feature, Source, Worker, content_registry_of, routers_of, sources_of
from bot.inbox import ReceiptWriter, Sweeper
from bot.inbox_sql import open_sink
from bot.instances import Instances
from bot.ops import add_ops_routes
from bot.outbox import OutboxWorker
from bot.periodic import PeriodicJobs
from bot.platform.mp import MpClient
from bot.platform.tokens import DbTokenStore, RedisTokenStore, TokenStore
from bot.platform.wecom import WeComClient
from bot.scheduler import Scheduler
from bot.services import Services
from bot.transport import MpEndpoint, WeComEndpoint, add_callback_routes
from bot.wechat import EnvelopeCrypto

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)


def build_app(
    settings: Settings,
    features: Sequence[Feature],
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    routers: Iterable[Router] | None = None,
) -> web.Application:
    """The app of ``features``. ``routers`` (tests, benchmarks) replaces the features' handlers; such an
    app runs no periodic jobs, scheduler posts or feature workers, only what a callback needs."""
    features = tuple(features)
    registry = content_registry_of(features)
    services = Services(
        settings,
        clock or SystemClock(),
        rng or random.Random(secrets.randbits(64)),
        load_runtime_content(settings.content_dir, registry),
    )
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[SERVICES] = services
    services.reloader = ContentReloader(services, registry)
    full = routers is None
    chosen = routers_of(features) if routers is None else list(routers)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_content)
    app.cleanup_ctx.append(lambda a: _platform_clients(a, features))
    app.cleanup_ctx.append(_alerts)
    app.cleanup_ctx.append(lambda a: _outbox(a, features))
    app.cleanup_ctx.append(lambda a: _intake(a, chosen, sources_of(features)))
    app.cleanup_ctx.append(_scheduler)
    if full:  # the whole application: the features' workers and periodic jobs too
        for feature in features:
            for worker in feature.workers:
                app.cleanup_ctx.append(_run_worker(worker))
        jobs = [j for f in features for j in f.jobs]
        app.cleanup_ctx.append(lambda a: PeriodicJobs(a[SERVICES], jobs).cleanup_ctx())
    common: dict[str, Any] = {
        "intake": services,
        "max_body": settings.server.max_body_bytes,
        "body_timeout": settings.server.body_timeout_seconds,
    }
    wecom, mp = _wecom_endpoint(settings, common), _mp_endpoint(settings, common)
    add_callback_routes(app, settings.server.wecom_path, settings.server.mp_path, wecom, mp)
    add_ops_routes(app, services)
    for feature in features:
        for add_routes in feature.routes:
            add_routes(app, services)
    app.on_startup.append(_tune_gc)
    return app


def _run_worker(worker: Worker) -> Callable[[web.Application], AsyncIterator[None]]:
    def run(app: web.Application) -> AsyncIterator[None]:
        return worker(app[SERVICES])

    return run


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
    for name in ("instances", "sessions", "engine"):
        s.stopped(name)


async def _content(app: web.Application) -> AsyncIterator[None]:
    """The published content revision, if there is one, before intake opens; then follow it."""
    s = app[SERVICES]
    problems = await s.reloader.follow()
    if problems:
        where = f"content revision {await s.reloader.live()}"
        raise ContentError(tuple(Problem(where, "", p) for p in problems))
    s.reloader.start(s.settings.content_poll_seconds)
    yield
    await s.reloader.stop()


async def _token_store(s: Services) -> tuple[TokenStore, Any]:
    url = s.settings.redis.url.get()
    if url:
        import redis.asyncio as redis

        # A Redis that stops answering must fail a call in seconds (the outbox retries before the row's
        # deadline), never hang it.
        client = redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return RedisTokenStore(client, s.clock), client
    return DbTokenStore(s.sessions, s.clock), None


async def _platform_clients(app: web.Application, features: Sequence[Feature]) -> AsyncIterator[None]:
    s = app[SERVICES]
    s.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    store, redis_client = await _token_store(s)
    if s.settings.wecom.corp_id:
        s.clients["wecom"] = WeComClient(s.http, s.settings.wecom, store, s.clock)
    if s.settings.official_account.app_id:
        s.clients["mp"] = MpClient(s.http, s.settings.official_account, store, s.clock)
    for feature in features:  # callers a feature adds on top of the platform's (group robots)
        for clients in feature.clients:
            s.clients.update(clients(s))
    yield
    await s.http.close()
    s.stopped("http")
    if redis_client is not None:
        await redis_client.aclose()


async def _alerts(app: web.Application) -> AsyncIterator[None]:
    """Set up before the workers that fail receipts, torn down after them: their last alerts still go out."""
    s = app[SERVICES]
    cfg = s.settings.alerts
    s.alerts = FailureAlerts(cfg.url.get(), s.metrics, s.clock, secret_values(s.settings), cfg.timeout_seconds)
    yield
    await s.alerts.close(cfg.timeout_seconds)


async def _outbox(app: web.Application, features: Sequence[Feature]) -> AsyncIterator[None]:
    s = app[SERVICES]
    reconcilers = {api: fn for f in features for make in f.reconcilers for api, fn in make(s).items()}
    s.outbox = OutboxWorker(
        s.engine, s.clients, s.clock, s.settings.outbox, s.metrics, s.instances, reconcilers=reconcilers
    )
    s.outbox.start()
    yield
    await s.outbox.stop(s.settings.server.shutdown_grace_seconds)


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """The APScheduler seam; features put their cron jobs on it from their workers."""
    s = app[SERVICES]
    s.scheduler = Scheduler(s.settings.tz, s.clock)
    s.scheduler.start()
    yield
    await s.scheduler.stop(s.settings.server.shutdown_grace_seconds)


async def _intake(app: web.Application, routers: list[Router], sources: Mapping[str, Source]) -> AsyncIterator[None]:
    s = app[SERVICES]
    cfg = s.settings
    s.dispatcher = Dispatcher(routers, s.sessions, cfg, s.clock, s.rng, s.metrics, s.outbox.notify, s)
    s.outbox.result_sink = s.dispatcher.complete_call
    dispatcher = s.dispatcher
    s.writer = ReceiptWriter(
        # one writer: a second PostgreSQL connection pipelining batches measured worse (bench/RESULTS.md)
        [open_sink(cfg.database.url.get(), gate_of(s.engine))],
        s.clock,
        s.instances.id,
        cfg.inbox.batch_max,
        wants=lambda event: bool(dispatcher.handlers_for(event)),
        door=dispatcher.door_calls,
        on_outbox=s.outbox.notify,
    )
    s.writer.start()
    s.sweeper = Sweeper(
        s.engine, s.clock, s.instances, cfg.inbox.sweep_interval_seconds, s.dispatcher.submit,
        s.dispatcher.in_flight_ids, on_failed=s.alerts.receipt_failed, sources=sources,
    )  # fmt: skip
    s.sweeper.start()
    yield
    await s.sweeper.stop()
    await s.writer.stop()
    await s.dispatcher.drain(cfg.server.shutdown_grace_seconds)
    s.stopped("writer")


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
