"""Operations endpoints: ``/healthz`` (liveness + database) and ``/metrics`` (Prometheus text).

Both answer within about a second whatever the database does. A database that refuses connections
fails fast anyway; one that *hangs* (accepts TCP, never answers: a stalled proxy, a lock) would hold
every read forever, so each read runs in its own task that the endpoint waits on for at most
``db_timeout`` seconds. Waiting on a task rather than cancelling in place matters: cancelling a
SQLAlchemy read in place runs the connection's clean-up (a ROLLBACK on the same hung server) inside the
request, which can block just as long. A timed-out read is cancelled in the background and, until it
has finished, later requests wait on that same read instead of starting another (at most one stuck
connection per kind of read, however often the probes come).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.models import Receipt
from bot.outbox import backlog

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

DB_TIMEOUT_SECONDS = 1.0
"""How long ``/healthz`` and ``/metrics`` wait for the database before calling it down."""

T = TypeVar("T")


class DatabaseReads:
    """Database reads with a deadline that holds even when the server hangs (see the module docstring)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def run(self, name: str, read: Callable[[], Awaitable[T]]) -> T:
        """The result of ``read()`` (or of the ``name`` read already running); ``TimeoutError`` after
        ``timeout`` seconds, the read's own exception if it fails sooner."""
        task = self._running.get(name)
        if task is None:
            task = asyncio.ensure_future(read())
            self._running[name] = task
            task.add_done_callback(lambda t: self._finished(name, t))
        done, _ = await asyncio.wait({task}, timeout=self.timeout)
        if not done:
            task.cancel()  # finishes in the background; later calls wait on it meanwhile
            raise TimeoutError(f"database read {name!r} took longer than {self.timeout:g} s")
        if task.cancelled():
            raise TimeoutError(f"database read {name!r} was abandoned after a timeout")
        result: T = task.result()
        return result

    def _finished(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._running.get(name) is task:
            del self._running[name]
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" noise for abandoned reads

    def cancel_all(self) -> None:
        for task in self._running.values():
            task.cancel()


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _backlog_figures(engine: AsyncEngine) -> tuple[dict[str, int], int, dict[str, int]]:
    states = await backlog(engine)
    async with engine.connect() as conn:
        pending = (
            await conn.execute(select(func.count()).select_from(Receipt).where(Receipt.status == "pending"))
        ).scalar_one()
        failed = (
            await conn.execute(
                select(Receipt.kind, func.count()).where(Receipt.status == "failed").group_by(Receipt.kind)
            )
        ).all()
    return states, int(pending), {str(kind): int(n) for kind, n in failed}


def add_ops_routes(app: web.Application, services: Services, db_timeout: float = DB_TIMEOUT_SECONDS) -> None:
    reads = DatabaseReads(db_timeout)

    async def healthz(_: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "status": "ok",
            "dispatching": services.dispatcher.in_flight if services.dispatcher else 0,
        }
        try:
            engine = services.engine
            assert engine is not None
            await reads.run("healthz", lambda: _select_one(engine))
        except Exception as exc:
            body.update(status="degraded", database=type(exc).__name__)
            return web.json_response(body, status=503)
        body["database"] = "ok"
        return web.json_response(body)

    async def metrics(_: web.Request) -> web.Response:
        gauges: dict[str, tuple[str, dict[Any, float]]] = {}
        engine = services.engine
        if engine is not None:
            up = 0.0
            try:
                states, pending, failed = await reads.run("metrics", lambda: _backlog_figures(engine))
            except Exception as exc:
                # No stale figures: a missing series is honest, siyu_database_up 0 is what to alert on.
                log.warning("metrics: database read failed (%s); database gauges left out", type(exc).__name__)
            else:
                up = 1.0
                gauges["siyu_outbox_backlog"] = (
                    "Outbox rows not final yet, by state.",
                    {(("state", st),): float(states.get(st, 0)) for st in ("pending", "sending")},
                )
                gauges["siyu_inbox_pending"] = ("Receipts not handled yet.", {(): float(pending)})
                gauges["siyu_inbox_failed"] = (
                    "Receipts that ended failed after their delivery was accepted, by event kind (siyu-bot "
                    "events --status failed).",
                    {(("kind", kind),): float(n) for kind, n in failed.items()} or {(): 0.0},
                )
            gauges["siyu_database_up"] = (
                f"1 when this scrape's database reads answered within {db_timeout:g} s, else 0.",
                {(): up},
            )
        return web.Response(text=services.metrics.render(gauges), content_type="text/plain", charset="utf-8")

    async def abandon_reads(_: web.Application) -> None:
        reads.cancel_all()

    app.on_shutdown.append(abandon_reads)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
