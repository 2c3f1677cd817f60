"""Operations endpoints: ``/healthz`` (liveness + database) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select, text

from bot.db.models import Receipt
from bot.outbox import backlog

if TYPE_CHECKING:
    from bot.app import Services


def add_ops_routes(app: web.Application, services: Services) -> None:
    async def healthz(_: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "status": "ok",
            "dispatching": services.dispatcher.in_flight if services.dispatcher else 0,
        }
        try:
            assert services.engine is not None
            async with asyncio.timeout(2):
                async with services.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:
            body.update(status="degraded", database=type(exc).__name__)
            return web.json_response(body, status=503)
        body["database"] = "ok"
        return web.json_response(body)

    async def metrics(_: web.Request) -> web.Response:
        gauges: dict[str, tuple[str, dict[Any, float]]] = {}
        if services.engine is not None:
            states = await backlog(services.engine)
            gauges["siyu_outbox_backlog"] = (
                "Outbox rows not final yet, by state.",
                {(("state", st),): float(states.get(st, 0)) for st in ("pending", "sending")},
            )
            async with services.engine.connect() as conn:
                pending = (
                    await conn.execute(select(func.count()).select_from(Receipt).where(Receipt.status == "pending"))
                ).scalar_one()
                failed = (
                    await conn.execute(
                        select(Receipt.kind, func.count()).where(Receipt.status == "failed").group_by(Receipt.kind)
                    )
                ).all()
            gauges["siyu_inbox_pending"] = ("Receipts not handled yet.", {(): float(pending)})
            gauges["siyu_inbox_failed"] = (
                "Receipts that ended failed after their delivery was accepted, by event kind (siyu-bot events "
                "--status failed).",
                {(("kind", kind),): float(n) for kind, n in failed} or {(): 0.0},
            )
        return web.Response(text=services.metrics.render(gauges), content_type="text/plain", charset="utf-8")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
