"""``siyu-bot serve``: the app on a TCP listener whose connections are guarded against slow clients.

aiohttp has no deadline for request headers, and a connection that never finishes them is held for
good (3,000 slow-header clients were). :class:`ConnectionGuard` wraps each connection's aiohttp
protocol and adds two rules:

* **header deadline** — a request's headers must be complete within ``server.header_timeout_seconds``
  of the connection opening, or of the first byte of the next request on a kept-alive connection;
  otherwise the connection is closed. (The body has its own deadline, ``server.body_timeout_seconds``,
  enforced where it is read: see :meth:`bot.transport.CallbackEndpoint._read_body`.)
* **connection cap** — at most ``server.max_connections`` at once. A connection beyond the cap evicts
  the oldest one that is not handling a request (an idle keep-alive or a client still sending
  headers); only when every connection is busy with a request is the newcomer refused with a 503.
  So a flood of stalled connections cannot lock out WeChat, whose requests arrive whole and are
  handled at once.

"Handling a request" is marked by a middleware from the moment the app sees the request until its
handler returns. Everything else (graceful shutdown on SIGTERM, keep-alive) is aiohttp's own.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestHandler

from bot.config import ServerConfig
from bot.metrics import Metrics

log = logging.getLogger(__name__)

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
KEEPALIVE_SECONDS = 75.0  # aiohttp's run_app default; nginx's upstream keepalive_timeout (60 s) is shorter


class ConnectionGuard:
    """Admission (the cap, evicting the oldest idle connection) and header deadlines for one listener."""

    def __init__(self, header_timeout: float, max_connections: int, metrics: Metrics | None = None) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._metrics = metrics or Metrics()
        self._live: dict[_GuardedConnection, None] = {}  # insertion order: oldest first
        self._by_transport: dict[object, _GuardedConnection] = {}

    @property
    def open_connections(self) -> int:
        return len(self._live)

    @property
    def busy_connections(self) -> int:
        return sum(not c.idle for c in self._live)

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedConnection(server(), self)

    def middleware(self) -> Middleware:
        @web.middleware
        async def mark_busy(request: web.Request, handler: Handler) -> web.StreamResponse:
            conn = self._by_transport.get(request.transport)
            if conn is None:
                return await handler(request)
            conn.begin()
            try:
                return await handler(request)
            finally:
                conn.end()

        return mark_busy

    def admit(self, conn: _GuardedConnection, transport: asyncio.BaseTransport) -> bool:
        if len(self._live) >= self.max_connections:
            victim = next((c for c in self._live if c.idle), None)
            if victim is None:
                self._closed("refused")
                return False
            self._closed("evicted")
            self.release(victim, victim.transport)
            victim.close()
        self._live[conn] = None
        self._by_transport[transport] = conn
        return True

    def release(self, conn: _GuardedConnection, transport: object) -> None:
        self._live.pop(conn, None)
        self._by_transport.pop(transport, None)

    def _closed(self, reason: str) -> None:
        self._metrics.inc("siyu_connections_closed_total", reason=reason)
        log.debug("connection closed by the guard", extra={"reason": reason})

    def header_timed_out(self) -> None:
        self._closed("header_timeout")


class _GuardedConnection(asyncio.Protocol):
    """Forwards the asyncio protocol calls to aiohttp's RequestHandler, adding the guard's rules."""

    def __init__(self, handler: RequestHandler, guard: ConnectionGuard) -> None:
        self._handler = handler
        self._guard = guard
        self._busy = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._admitted = False
        self.transport: asyncio.BaseTransport | None = None

    @property
    def idle(self) -> bool:
        return self._busy == 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if not self._guard.admit(self, transport):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        self._handler.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self.idle and self._deadline is None:  # the first bytes of a new request: its headers' clock starts
            self._arm()
        self._handler.data_received(data)

    def eof_received(self) -> None:
        if self._admitted:
            self._handler.eof_received()

    def pause_writing(self) -> None:
        if self._admitted:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._handler.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._guard.release(self, self.transport)
        if self._admitted:
            self._handler.connection_lost(exc)

    def begin(self) -> None:
        self._busy += 1
        self._disarm()

    def end(self) -> None:
        self._busy -= 1

    def close(self) -> None:
        self._disarm()
        self._handler.force_close()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout, self._header_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _header_deadline(self) -> None:
        self._deadline = None
        if self.idle:
            self._guard.header_timed_out()
            self.close()


class GuardedSite(web.BaseSite):
    """A TCP site like aiohttp's TCPSite, whose connections go through a :class:`ConnectionGuard`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, sock: socket.socket | None = None
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard
        self._sock = sock  # a listening socket made elsewhere (gunicorn's, shared by its workers)

    @property
    def port(self) -> int:
        if self._server is not None and (sockets := getattr(self._server, "sockets", None)):
            return int(sockets[0].getsockname()[1])
        return self._port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        factory = self._guard.protocol_factory(server)
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock)
        else:
            self._server = await loop.create_server(factory, self._host, self._port, reuse_address=True)


async def start_guarded(
    app: web.Application, cfg: ServerConfig, host: str, port: int, *, metrics: Metrics, **runner_kw: Any
) -> tuple[web.AppRunner, GuardedSite, ConnectionGuard]:
    """Set the app up and listen on ``host:port`` (0: any free port) behind a guard. Stop with ``runner.cleanup()``."""
    runner, guard = await setup_guarded(app, cfg, metrics=metrics, **runner_kw)
    site = GuardedSite(runner, host, port, guard)
    await site.start()
    return runner, site, guard


async def setup_guarded(
    app: web.Application, cfg: ServerConfig, *, metrics: Metrics, **runner_kw: Any
) -> tuple[web.AppRunner, ConnectionGuard]:
    """The app set up (startup done) with a guard for its sites; add :class:`GuardedSite` s to listen."""
    guard = ConnectionGuard(cfg.header_timeout_seconds, cfg.max_connections, metrics)
    app.middlewares.append(guard.middleware())  # before the runner freezes the app
    runner = web.AppRunner(
        app,
        shutdown_timeout=cfg.shutdown_grace_seconds,
        keepalive_timeout=KEEPALIVE_SECONDS,
        # After a 408/413 aiohttp keeps reading (and dropping) the unread body before closing, so the
        # client gets the answer rather than a reset: for as long as a whole body may take, not 10 s.
        lingering_time=cfg.body_timeout_seconds,
        **runner_kw,
    )
    await runner.setup()
    return runner, guard


def check_open_files(cfg: ServerConfig) -> None:
    """Warn when ``server.max_connections`` (per process) does not fit the open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < cfg.max_connections + 128:
        log.warning(
            "server.max_connections is close to the open-file limit: raise `ulimit -n` (LimitNOFILE=)",
            extra={"max_connections": cfg.max_connections, "nofile": soft},
        )


def run(
    app: web.Application, cfg: ServerConfig, host: str, port: int, *, metrics: Metrics, announce: Callable[[str], None]
) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully: the listener first, then the app's cleanup
    (workers drain) — ``web.run_app``'s order, with the guard on the listener."""
    check_open_files(cfg)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner, site, _ = await start_guarded(app, cfg, host, port, metrics=metrics, access_log=None)
        try:
            announce(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)")
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
