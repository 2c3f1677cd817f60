"""A webhook receiver as a brand would run one: verifies every delivery with ``standardwebhooks`` and keeps
the first of each ``webhook-id`` (dedup), so a test can see what arrived, how often, in what order."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.mode = "up"  # up | down (503) | gone (410)
        self.fail_next = 0  # answer 500 to this many more requests, then follow ``mode``
        self.gate = asyncio.Event()  # while clear, every request (after ``fail_next``) waits until it is set
        self.gate.set()
        self.stalled = 0  # requests that waited at the gate
        self.events: list[dict[str, Any]] = []  # verified, first of each webhook-id, in arrival order
        self.ids: list[str] = []
        self.received: Counter[str] = Counter()  # verified deliveries per webhook-id (dups included)
        self.refused = 0
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="try again")
        if not self.gate.is_set():  # a slow receiver: the sender's request stays in flight meanwhile
            self.stalled += 1
            await self.gate.wait()
        if self.mode == "down":
            return web.Response(status=503, text="down for maintenance")
        if self.mode == "gone":
            return web.Response(status=410, text="gone")
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return web.Response(status=400, text="bad signature")
        webhook_id = request.headers["webhook-id"]
        self.received[webhook_id] += 1
        if self.received[webhook_id] == 1:
            self.events.append(payload)
            self.ids.append(webhook_id)
        return web.Response(status=204)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]
