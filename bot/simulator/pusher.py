"""The platform side of callbacks: sign, encrypt, POST, retry like WeChat
(docs/platform.md#callback-crypto, #timeouts-retries-and-dedup).

* WeCom (docs/platform.md#wecom-callbacks): ``POST url?msg_signature&timestamp&nonce`` with the envelope
  ``<xml><ToUserName/><Encrypt/><AgentID/></xml>``; receive id = CorpID; ``msg_signature`` =
  sha1(sorted(token, timestamp, nonce, Encrypt)).
* Official Account (docs/platform.md#oa-safe-mode): plain mode sends ``signature`` (sha1 of token, timestamp, nonce),
  ``timestamp``, ``nonce``, ``openid`` and the plaintext body; safe mode adds ``encrypt_type=aes`` and
  ``msg_signature`` and sends ``<xml><ToUserName/><Encrypt/></xml>`` encrypted for the AppID.
* Delivery
  (docs/platform.md#timeouts-retries-and-dedup): an answer other than HTTP 200 within ``timeout`` (5 s) is a failure and
  the same plaintext is sent again, freshly encrypted, up to ``retries`` (3) more times. The retry
  interval is undocumented; by default we resend at once, ``retry_delay`` waits that many (real)
  seconds between attempts — a refused connection fails in a millisecond, so without a delay all
  attempts land inside one crash-restart gap (the fault suite paces them like a platform would).
  ``duplicates`` re-delivers a successfully pushed payload on purpose, as WeChat's retries sometimes do.
* ``alternates``: more callback URLs of the same account behind a round-robin load balancer (replicas):
  pushes start at the next URL in turn and each retry moves on to the next one, so with two replicas a
  retry always reaches the other one (as a balancer that skips a refused backend would).
* The answer: ``""``/``success`` means no passive reply; an encrypted 4-field envelope is verified
  and decrypted (``Delivery.reply``); anything unreadable is reported in ``Delivery.reply_error``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from bot.clock import Clock
from bot.simulator.state import SimAccounts
from bot.wechat import CallbackRejected, EnvelopeCrypto, extract_encrypt, parse_xml, signature

DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class CallbackTarget:
    """Where and how to push: the bot's callback URL and the account's callback credentials."""

    url: str
    token: str
    encoding_aes_key: str | None  # None: OA plain mode
    receive_id: str  # CorpID (WeCom) / AppID (OA)
    work: bool
    to_user: str  # envelope ToUserName: CorpID / the OA original id
    agent_id: str = ""


def wecom_target(accounts: SimAccounts, url: str) -> CallbackTarget:
    return CallbackTarget(
        url=url,
        token=accounts.wecom_token,
        encoding_aes_key=accounts.wecom_aes_key,
        receive_id=accounts.corp_id,
        work=True,
        to_user=accounts.corp_id,
        agent_id=str(accounts.agent_id),
    )


def mp_target(accounts: SimAccounts, url: str, *, safe_mode: bool = True) -> CallbackTarget:
    return CallbackTarget(
        url=url,
        token=accounts.mp_token,
        encoding_aes_key=accounts.mp_aes_key if safe_mode else None,
        receive_id=accounts.app_id,
        work=False,
        to_user=accounts.mp_original_id,
    )


@dataclass(frozen=True)
class Attempt:
    status: int | None  # None: timed out or could not connect
    body: str
    error: str | None = None
    duplicate: bool = False
    url: str = ""  # where this attempt went (differs between attempts with ``alternates``)
    seconds: float = 0.0  # from sending the request to its answer (or giving up): the ack latency


@dataclass
class Delivery:
    """What happened to one pushed plaintext: every attempt, and the bot's (decrypted) reply."""

    plaintext: str
    attempts: list[Attempt] = field(default_factory=list)
    reply: str | None = None
    reply_error: str | None = None

    @property
    def ok(self) -> bool:
        return any(a.status == 200 and not a.duplicate for a in self.attempts)

    @property
    def tries(self) -> int:
        """Sends before success or giving up (1 + retries), duplicates not counted."""
        return sum(1 for a in self.attempts if not a.duplicate)

    @property
    def body(self) -> str:
        """The raw body of the accepted answer ("" when none was accepted)."""
        return next((a.body for a in self.attempts if a.status == 200 and not a.duplicate), "")


class CallbackPusher:
    """Pushes callbacks to one target with an injected session, clock (for ``timestamp``) and rng."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        target: CallbackTarget,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        retry_delay: float = 0.0,
        alternates: Sequence[str] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.urls = (target.url, *alternates)
        self._turn = 0
        self._session = session
        self._clock = clock
        self._rng = rng or random.Random(0)
        key = target.encoding_aes_key
        self._crypto = EnvelopeCrypto(target.token, key, target.receive_id, work=target.work) if key else None

    async def push(self, plaintext: str, *, duplicates: int = 0) -> Delivery:
        delivery = Delivery(plaintext)
        turn = self._turn  # this push's attempts take consecutive replicas, whatever other pushes do
        self._turn += 1
        for n in range(1 + self.retries):
            if n and self.retry_delay:
                await asyncio.sleep(self.retry_delay)
            attempt = await self._send(plaintext, duplicate=False, url=self._url(turn + n))
            delivery.attempts.append(attempt)
            if attempt.status == 200:
                delivery.reply, delivery.reply_error = self._read_reply(attempt.body)
                break
        for k in range(duplicates):
            delivery.attempts.append(await self._send(plaintext, duplicate=True, url=self._url(turn + k)))
        return delivery

    def _url(self, turn: int) -> str:
        return self.urls[turn % len(self.urls)]

    def _envelope(self, plaintext: str, timestamp: str, nonce: str) -> tuple[dict[str, str], str]:
        t = self.target
        params = {"timestamp": timestamp, "nonce": nonce}
        if not t.work:
            params["signature"] = signature(t.token, timestamp, nonce)
            openid = parse_xml(plaintext).get("FromUserName")
            if isinstance(openid, str):
                params["openid"] = openid
        if self._crypto is None:
            return params, plaintext
        encrypt = self._crypto.encrypt(plaintext)
        params["msg_signature"] = self._crypto.sign(timestamp, nonce, encrypt)
        head = f"<xml><ToUserName><![CDATA[{t.to_user}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
        if t.work:
            return params, head + f"<AgentID><![CDATA[{t.agent_id}]]></AgentID></xml>"
        params["encrypt_type"] = "aes"
        return params, head + "</xml>"

    async def _send(self, plaintext: str, *, duplicate: bool, url: str) -> Attempt:
        timestamp = str(int(self._clock.now().timestamp()))
        nonce = str(self._rng.randrange(10**8, 10**10))
        params, body = self._envelope(plaintext, timestamp, nonce)
        headers = {"Content-Type": "text/xml"}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                async with self._session.post(url, params=params, data=body.encode(), headers=headers) as r:
                    text = await r.text()
                    return Attempt(r.status, text, None, duplicate, url, time.perf_counter() - started)
        except TimeoutError:
            elapsed = time.perf_counter() - started
            return Attempt(None, "", f"no answer within {self.timeout} s", duplicate, url, elapsed)
        except aiohttp.ClientError as exc:
            elapsed = time.perf_counter() - started
            return Attempt(None, "", f"{type(exc).__name__}: {exc}", duplicate, url, elapsed)

    def _read_reply(self, body: str) -> tuple[str | None, str | None]:
        text = body.strip()
        if text in ("", "success"):
            return None, None
        if self._crypto is None:
            return text, None
        try:
            fields = parse_xml(text)
            encrypt = extract_encrypt(fields)
            sig, ts, nonce = (str(fields.get(k, "")) for k in ("MsgSignature", "TimeStamp", "Nonce"))
            self._crypto.check(sig, ts, nonce, encrypt)
            return self._crypto.decrypt(encrypt), None
        except CallbackRejected as exc:
            return None, f"reply not accepted: {exc.reason}"
