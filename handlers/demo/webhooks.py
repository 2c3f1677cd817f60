"""The brand's side of ``siyu-bot demo``'s outbound webhooks: a receiver on loopback, inside the demo process.

It is registered as an endpoint for every event (``*``, as ``siyu-bot webhooks add`` would; the demo's
settings allow loopback targets), verifies each delivery's signature with the ``standardwebhooks`` library
exactly as a brand's server would (docs/webhooks.md, "Verifying a delivery"), keeps the first of each
``webhook-id`` and prints one line per event as it arrives, interleaved with the story. The signing secret
stays between the bot and the receiver: the demo says that one was created, never what it is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from bot.actions import run_action
from bot.rig import Rig
from handlers.integrations.delivery import WEBHOOK_WORKER
from handlers.integrations.endpoints import add_endpoint

Out = Callable[[str], Any]
PATH = "/hooks/siyu"
# What a line shows of an event besides its customer (the rest is in the payload, docs/webhooks.md).
DETAILS: dict[str, tuple[str, ...]] = {
    "customer.merged": ("kept", "dropped"),
    "customer.touched": ("channel", "action"),
    "customer.lost": ("channel", "kind"),
    "customer.tags_changed": ("added", "removed"),
    "group.member_joined": ("chat_id",),
    "group.member_left": ("chat_id",),
    "checkin.completed": ("streak", "points"),
    "lottery.drawn": ("campaign_id", "won", "prize"),
    "drip.step_sent": ("drip_id", "step_id"),
    "drip.stopped": ("drip_id", "reason"),
    "order.recorded": ("order_id", "amount_cents"),
    "mp.followed": ("channel",),
    "message.received": ("msgtype", "text"),
    "referral.rewarded": ("inviter_id", "invitee_id"),
    "group_post.confirmed": ("post_id", "target"),
}


def describe(payload: dict[str, Any]) -> str:
    """``webhook  customer.created        customer 3 (wmAbCdEf…)  …``: one line per event."""
    kind = str(payload.get("type", "?"))
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    parts = [f"webhook  {kind:<22}"]
    who = data.get("customer")
    if isinstance(who, dict):
        ident = next((str(who[k]) for k in ("external_userid", "openid", "unionid") if who.get(k)), "")
        parts.append(f"customer {who.get('id')}" + (f" ({ident[:8]}…)" if ident else ""))
    for key in DETAILS.get(kind, ()):
        value = data.get(key)
        if value not in (None, [], ""):
            shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{key} {shown[:24]}")
    return "  ".join(parts).rstrip()


class DemoReceiver:
    """An aiohttp server on 127.0.0.1 that verifies, dedupes and prints what the bot delivers."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.received: Counter[str] = Counter()  # verified requests per webhook-id (repeats included)
        self.refused = 0  # requests whose signature (or timestamp) did not verify
        self.url = ""
        self._hook: Webhook | None = None
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"DemoReceiver(url={self.url!r}, deliveries={len(self.received)})"  # never the secret

    async def start(self) -> DemoReceiver:
        app = web.Application()
        app.router.add_post(PATH, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{PATH}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def subscribe(self, rig: Rig) -> int:
        """Add this receiver as an endpoint for every event (``siyu-bot webhooks add URL --events '*'``)."""
        allow = rig.services.settings.webhooks.allow_private_targets
        made = await run_action(
            rig.services, lambda ctx: add_endpoint(ctx.session, self.url, "*", ordered=False, allow_private=allow,
                                                   now=ctx.now()),
        )  # fmt: skip
        self._hook = Webhook(made.secret)
        return made.id

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self._hook is None:
            return web.Response(status=503)
        try:
            payload = self._hook.verify(body, dict(request.headers))  # the raw body; ±5 min of our clock
        except WebhookVerificationError:
            self.refused += 1
            self.out("    webhook  REFUSED: the signature did not verify")
            return web.Response(status=400)
        webhook_id = request.headers["webhook-id"]
        self.received[webhook_id] += 1
        if self.received[webhook_id] == 1:  # a repeat (same webhook-id) was handled already: drop it
            self.out("    " + describe(payload if isinstance(payload, dict) else json.loads(body)))
        return web.Response(status=204)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.values())

    def closing(self) -> str:
        verified = "all signatures verified" if self.refused == 0 else f"{self.refused} signatures REFUSED"
        return f"webhooks: {len(self.received)} deliveries, {verified}, {self.duplicates} duplicates by webhook-id"


async def settle(rig: Rig) -> None:
    """``Rig.drain`` and then every webhook delivery due now, answered (so a step's events print with it)."""
    await rig.drain()
    worker = rig.services.parts.get(WEBHOOK_WORKER)
    if worker is not None:
        await worker.drain()
