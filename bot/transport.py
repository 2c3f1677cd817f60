"""HTTP transport for callbacks: verify → decrypt → parse → durable receipt → ack.

WeCom (docs/platform.md#wecom-callbacks): GET answers the decrypted ``echostr`` within 1 s; POST is always
encrypted (``msg_signature`` over ``Encrypt``): the signature is checked before anything it does not
cover is parsed (the envelope is only scanned for ``Encrypt``, see :func:`bot.wechat.envelope_encrypt`).
Official Account
(docs/platform.md#oa-safe-mode): GET checks the plain ``signature`` and echoes ``echostr``; POST is safe mode
(``encrypt_type=aes``, ``msg_signature``, same order) unless ``official_account.allow_plain`` is set.
A forged or malformed callback gets a 4xx and nothing is stored; a callback is answered 200 only after
its receipt is committed (503 if the database fails, so WeChat retries). Official Account events may
get a passive reply: a content-only one (a reply planner, bot/reply_plan.py) at once after the commit,
one that depends on state from the handlers' transaction inside the reply budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import web

from bot.dispatcher import Dispatcher
from bot.event_parser import from_fields
from bot.events import Event, Followed, MenuClicked, Platform, Scanned, TextReceived
from bot.inbox import ReceiptWriter
from bot.metrics import Metrics
from bot.parts import NotStarted
from bot.replies import Reply
from bot.reply_slot import ReplySlot
from bot.wechat import CallbackRejected, EnvelopeCrypto, envelope_encrypt, parse_xml, render_xml, signature

log = logging.getLogger(__name__)

# Events the Official Account lets us answer in the HTTP response itself
# (docs/platform.md#passive-replies, #menu-events).
REPLYABLE = (TextReceived, MenuClicked, Followed, Scanned)
_REPLY_GRACE = 1.2  # a reply already taken before the budget ran out may still finish (< 5 s total)


def query_params(request: web.Request) -> dict[str, str]:
    """Parse the query with ``unquote`` (not ``unquote_plus``): a literal ``+`` in echostr stays ``+``."""
    out: dict[str, str] = {}
    for pair in request.query_string.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            out.setdefault(unquote(key), unquote(value))
    return out


def _required(params: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not params.get(n)]
    if missing:
        raise CallbackRejected(400, f"missing query parameter(s): {', '.join(missing)}")
    return [params[n] for n in names]


class Intake(Protocol):
    """What the endpoints need at request time (the app's Services; set up after routes are frozen)."""

    metrics: Metrics

    @property
    def writer(self) -> ReceiptWriter: ...  # raises NotStarted until start-up made it
    @property
    def dispatcher(self) -> Dispatcher: ...


class CallbackEndpoint:
    """Shared intake for one platform: body cap, claim, dispatch, metrics."""

    platform: Platform

    def __init__(self, intake: Intake, max_body: int, body_timeout: float) -> None:
        self._intake = intake
        self._metrics = intake.metrics
        self._max_body = max_body
        self._body_timeout = body_timeout

    @property
    def _writer(self) -> ReceiptWriter:
        try:
            return self._intake.writer
        except NotStarted:
            raise CallbackRejected(503, "starting up") from None

    @property
    def _dispatcher(self) -> Dispatcher:
        try:
            return self._intake.dispatcher
        except NotStarted:
            raise CallbackRejected(503, "starting up") from None

    async def _body(self, request: web.Request) -> bytes:
        body = await self._read_body(request)
        if not body:
            raise CallbackRejected(400, "empty body")
        return body

    async def _read_body(self, request: web.Request) -> bytes:
        """The raw body, capped before it is read and cut off (408) if it has not all arrived in time."""
        if request.content_length is not None and request.content_length > self._max_body:
            raise CallbackRejected(413, "body too large")
        buf = bytearray()
        try:
            async with asyncio.timeout(self._body_timeout):
                while len(buf) <= self._max_body:  # read() returns what has arrived: loop until EOF or the cap
                    chunk = await request.content.read(self._max_body + 1 - len(buf))
                    if not chunk:
                        break
                    buf += chunk
        except TimeoutError:
            raise CallbackRejected(408, "body not received in time") from None
        if len(buf) > self._max_body:
            raise CallbackRejected(413, "body too large")
        return bytes(buf)

    def _rejected(self, exc: CallbackRejected, request: web.Request) -> web.Response:
        self._metrics.inc("siyu_callbacks_total", platform=self.platform, kind="-", outcome=f"rejected_{exc.status}")
        log.warning(
            "callback rejected",
            extra={
                "platform": self.platform,
                "status": exc.status,
                "reason": exc.reason,
                "peer": request.remote,
            },
        )
        response = self._rejection(exc)
        if exc.status in (408, 413):  # the rest of the body is still on its way: do not wait for it
            response.force_close()
        return response

    def _rejection(self, exc: CallbackRejected) -> web.Response:
        return web.Response(status=exc.status, text=exc.reason)

    async def _store(self, event: Event) -> tuple[int | None, bool, web.Response | None]:
        """Commit the receipt. Returns (receipt id or None for a duplicate, needs dispatch, failure response)."""
        try:
            claim = await self._writer.claim(event)
        except CallbackRejected as exc:
            return None, False, web.Response(status=exc.status, text=exc.reason)
        except Exception:
            self._metrics.inc("siyu_callbacks_total", platform=self.platform, kind=event.kind, outcome="store_failed")
            return None, False, web.Response(status=503, text="try again")
        if claim.duplicate:
            self._metrics.inc("siyu_dedup_hits_total", platform=self.platform, kind=event.kind)
            self._metrics.inc("siyu_callbacks_total", platform=self.platform, kind=event.kind, outcome="duplicate")
            return None, False, None
        self._metrics.inc("siyu_callbacks_total", platform=self.platform, kind=event.kind, outcome="stored")
        return claim.receipt_id, claim.dispatch, None


class WeComEndpoint(CallbackEndpoint):
    platform: Platform = "wecom"

    def __init__(self, crypto: EnvelopeCrypto, **kw: Any) -> None:
        super().__init__(**kw)
        self._crypto = crypto

    async def verify_url(self, request: web.Request) -> web.Response:
        try:
            sig, ts, nonce, echostr = _required(query_params(request), "msg_signature", "timestamp", "nonce", "echostr")
            self._crypto.check(sig, ts, nonce, echostr)
            return web.Response(text=self._crypto.decrypt(echostr))
        except CallbackRejected as exc:
            return self._rejected(exc, request)

    async def receive(self, request: web.Request) -> web.Response:
        try:
            sig, ts, nonce = _required(query_params(request), "msg_signature", "timestamp", "nonce")
            encrypt = envelope_encrypt(await self._body(request))  # a scan: the envelope is never parsed
            self._crypto.check(sig, ts, nonce, encrypt)
            event = from_fields("wecom", parse_xml(self._crypto.decrypt(encrypt)))
        except CallbackRejected as exc:
            return self._rejected(exc, request)
        receipt_id, dispatch, failure = await self._store(event)
        if failure is not None:
            return failure
        if receipt_id is not None and dispatch:
            self._dispatcher.submit(receipt_id, event)
        # docs/platform.md#timeouts-retries-and-dedup
        return web.Response(text="")  # 200 with an empty body: "received, no passive reply"


class MpEndpoint(CallbackEndpoint):
    platform: Platform = "mp"

    def __init__(
        self, token: str, crypto: EnvelopeCrypto | None, allow_plain: bool, reply_budget: float, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self._token = token
        self._crypto = crypto
        self._allow_plain = allow_plain
        self._budget = reply_budget

    def _check_plain(self, params: dict[str, str]) -> None:
        sig, ts, nonce = _required(params, "signature", "timestamp", "nonce")
        if signature(self._token, ts, nonce) != sig:
            raise CallbackRejected(403, "bad signature")

    async def verify_url(self, request: web.Request) -> web.Response:
        try:
            params = query_params(request)
            self._check_plain(params)
            (echostr,) = _required(params, "echostr")
            return web.Response(text=echostr)
        except CallbackRejected as exc:
            return self._rejected(exc, request)

    async def receive(self, request: web.Request) -> web.Response:
        try:
            params = query_params(request)
            encrypted = params.get("encrypt_type", "raw") == "aes"
            event = await self._decode(request, params, encrypted)
        except CallbackRejected as exc:
            return self._rejected(exc, request)
        receipt_id, dispatch, failure = await self._store(event)
        if failure is not None:
            return failure
        planned = self._plan(event) if isinstance(event, REPLYABLE) else None
        if planned is not None:
            # Content-only: answer now; the handlers run after the answer and only record what was sent.
            # A duplicate (WeChat's retry when no answer came within 5 s) gets the same reply: it is a pure
            # function of the event and the content, and it is how a lost answer reaches the user.
            if receipt_id is not None and dispatch:
                self._dispatcher.submit(receipt_id, event)
            self._metrics.inc("siyu_passive_replies_total", outcome="planned")
            return self._render_reply(event, planned.passive_fields(), params, encrypted)
        if receipt_id is None or not dispatch:
            return web.Response(text="success")
        if not isinstance(event, REPLYABLE):
            self._dispatcher.submit(receipt_id, event)
            return web.Response(text="success")
        slot = ReplySlot()  # the reply depends on state: it waits for the handlers' transaction
        self._dispatcher.submit(receipt_id, event, slot)
        reply = await slot.wait(self._budget, _REPLY_GRACE)
        if reply is None:
            return web.Response(text="success")
        return self._render_reply(event, reply.passive_fields(), params, encrypted)

    def _plan(self, event: Event) -> Reply | None:
        """The reply planners' answer (bot/reply_plan.py); a planner that fails costs its reply, not the receipt."""
        try:
            return self._dispatcher.plan_reply(event)
        except CallbackRejected:
            raise
        except Exception:
            log.exception("reply planner failed", extra={"event_kind": event.kind})
            self._metrics.inc("siyu_passive_replies_total", outcome="plan_failed")
            return None

    async def _decode(self, request: web.Request, params: dict[str, str], encrypted: bool) -> Event:
        if encrypted:
            if self._crypto is None:
                raise CallbackRejected(400, "safe mode is not configured (no EncodingAESKey)")
            sig, ts, nonce = _required(params, "msg_signature", "timestamp", "nonce")
            encrypt = envelope_encrypt(await self._body(request))  # a scan: the envelope is never parsed
            self._crypto.check(sig, ts, nonce, encrypt)
            return from_fields("mp", parse_xml(self._crypto.decrypt(encrypt)))
        if not self._allow_plain:
            raise CallbackRejected(403, "plain mode is not allowed (set official_account.allow_plain)")
        self._check_plain(params)  # signs the query only: the body is attacker-controlled, parsed with bounds
        return from_fields("mp", parse_xml(await self._body(request)))

    def _render_reply(
        self, event: Event, fields: dict[str, Any], params: dict[str, str], encrypted: bool
    ) -> web.Response:
        openid = getattr(event, "openid", "")
        xml = render_xml(
            {"ToUserName": openid, "FromUserName": event.account, "CreateTime": int(time.time()), **fields}
        )
        if encrypted and self._crypto is not None:
            xml = self._crypto.encrypted_reply(xml, nonce=params.get("nonce"), timestamp=params.get("timestamp"))
        return web.Response(text=xml, content_type="application/xml")


def add_callback_routes(
    app: web.Application, wecom_path: str, mp_path: str, wecom: WeComEndpoint | None, mp: MpEndpoint | None
) -> None:
    if wecom is not None:
        app.router.add_get(wecom_path, wecom.verify_url)
        app.router.add_post(wecom_path, wecom.receive)
    if mp is not None:
        app.router.add_get(mp_path, mp.verify_url)
        app.router.add_post(mp_path, mp.receive)
