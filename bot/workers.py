"""``siyu-bot serve --workers N``: N serving processes on one port, kept running by gunicorn (PostgreSQL).

One event loop tops out at a few thousand callbacks a second; beyond that the same app runs in N
processes. We do not manage those processes ourselves: gunicorn's arbiter (the ``serve`` process, "the
master") binds the port once, forks N workers that all accept on that one listening socket, restarts a
worker that dies, and stops them gracefully. Each worker is aiohttp's ``GunicornWebWorker`` with one
change (:class:`GuardedWorker`): it listens through :class:`bot.serving.GuardedSite`, so the header and
body deadlines and the connection cap hold in every worker exactly as in a plain ``serve``.

Each worker is a full replica: its own app, database pool, instance row with heartbeat, inbox writer,
dispatcher, sweeper, outbox, drip poll, scheduler and periodic jobs — the same code that already runs as
several replicas on PostgreSQL. Receipts and platform calls name their owner process; a worker killed
with ``kill -9`` is seen dead by its siblings (same host, pid gone) at their next sweep and its work is
taken over at once; gunicorn starts a replacement, which registers a new instance row.

Signals, sent to the master (the pid ``serve`` runs as):

* ``SIGTERM`` — graceful: listener closed, every worker drains (``server.shutdown_grace_seconds`` per
  stage), then exits; a worker not done within the graceful timeout (sized from the grace) is killed and
  its unfinished rows are free for the next start at once.
* ``SIGINT`` / ``SIGQUIT`` — gunicorn's quick stop; our workers still run their shutdown order.
* ``SIGHUP`` — **content reload in every worker** (each validates and swaps all or nothing, as a plain
  ``serve`` does). gunicorn's own meaning of HUP (re-read its config and replace all workers) is not
  used: a broken content file would stop new workers from booting, and gunicorn halts when a worker
  fails to boot.
* ``SIGTTIN`` / ``SIGTTOU`` — one worker more / fewer (gunicorn).

Needs the optional ``workers`` extra (``pip install 'siyu-bot[workers]'``: gunicorn); ``bot.cli`` checks
before importing this module.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.worker import GunicornWebWorker
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger

from bot import serving
from bot.config import Settings

HEARTBEAT_TIMEOUT = 30  # seconds: a worker whose event loop has not ticked for this long is killed and replaced


def graceful_seconds(settings: Settings) -> int:
    """How long the master waits for a stopping worker before SIGKILL: the listener's drain, the
    dispatcher's drain, the scheduler's and the outbox's each get ``shutdown_grace_seconds``; plus slack."""
    return int(4 * settings.server.shutdown_grace_seconds) + 10


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Log(Logger):  # type: ignore[misc]
    """gunicorn's own lines go through our root handler (JSON or text, secrets scrubbed)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.handlers = []
        self.error_log.propagate = True


class _Arbiter(Arbiter):  # type: ignore[misc]
    def handle_hup(self) -> None:
        self.log.info("SIGHUP: reloading the content in every worker")
        self.kill_workers(signal.SIGHUP)


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, bind: str, workers: int, app_factory: Callable[[], web.Application]) -> None:
        self.settings = settings
        self.bind = bind
        self.workers = workers
        self.app_factory = app_factory
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [self.bind],
            "workers": self.workers,
            "worker_class": "bot.workers.GuardedWorker",
            "timeout": HEARTBEAT_TIMEOUT,
            "graceful_timeout": graceful_seconds(s),
            "keepalive": int(serving.KEEPALIVE_SECONDS),
            "logger_class": _Log,
            "loglevel": s.logging.level.lower(),
            "proc_name": "siyu-bot",
            "accesslog": None,
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn ≥ 24: one fixed path per user, not per server
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[[], web.Application]:
        return self.app_factory

    def run(self) -> None:
        _Arbiter(self).run()  # ends with sys.exit(status)


def serve_workers(
    settings: Settings, host: str, port: int, workers: int, app_factory: Callable[[], web.Application]
) -> int:
    """Run gunicorn's arbiter in this process until it is stopped; returns its exit status.
    ``app_factory`` runs in each worker after the fork (nothing with a socket or a loop is shared)."""
    try:
        _Gunicorn(settings, bind_address(host, port), workers, app_factory).run()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


class GuardedWorker(GunicornWebWorker):
    """aiohttp's gunicorn worker, listening through :class:`bot.serving.GuardedSite` (deadlines, cap).

    The serve loop below is aiohttp's (``GunicornWebWorker._run``): tick the arbiter's heartbeat every
    second, stop when told to or when the master is gone, then ``runner.cleanup()`` — listener first,
    then the app's shutdown order (``bot.app``)."""

    async def _run(self) -> None:
        from bot.app import SERVICES

        gunicorn_app: _Gunicorn = self.app
        app = gunicorn_app.app_factory()
        cfg = gunicorn_app.settings.server
        serving.check_open_files(cfg)
        runner, guard = await serving.setup_guarded(app, cfg, metrics=app[SERVICES].metrics, access_log=None)
        for listener in self.sockets:
            sock = getattr(listener, "sock", listener)  # gunicorn wraps the socket
            host, port = sock.getsockname()[:2]
            await serving.GuardedSite(runner, host, port, guard, sock=sock).start()
        self.booted = True  # bound and serving: a later exit is a crash to restart, not a boot failure
        pid = os.getpid()
        try:
            while self.alive:
                self.notify()
                if pid == os.getpid() and self.ppid != os.getppid():
                    self.alive = False
                    self.log.info("Parent changed, shutting down: %s", self)
                else:
                    await self._wait_next_notify()
        finally:
            await runner.cleanup()
