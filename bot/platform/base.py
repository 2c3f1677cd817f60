"""JSON over HTTP to ``<api_base_url>/cgi-bin/<api>``: the one aiohttp client seam of siyu-bot.

The app owns the ``aiohttp.ClientSession`` (created and closed in its cleanup context); clients only
borrow it. One ``call`` does what the docs ask of every caller
(docs/platform.md#access-tokens-and-rate-limits): attach the cached token, map a
non-zero ``errcode`` to a typed exception, refresh the token and retry **once** on 40001/40014/42001,
and back off (exponential, jittered, at most ``max_tries`` attempts) only on -1/45009/45033.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from bot.clock import Clock
from bot.platform.errors import (
    CredentialsRejected,
    Retryable,
    TokenInvalid,
    TransportError,
    error_for,
    redact,
)
from bot.platform.tokens import TokenManager, TokenStore

JsonObject = dict[str, object]
"""A decoded platform response (``errcode``/``errmsg`` included when the platform sent them)."""

QueryParams = Mapping[str, str | int]


class PlatformClient(ABC):
    """Shared call logic; subclasses provide the token endpoint (:meth:`_fetch_token`) and the API."""

    # A token fetch holds the refresh lease (TokenManager, 5 s): it must give up before the lease ends.
    TOKEN_TIMEOUT = aiohttp.ClientTimeout(total=4.0)

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        store: TokenStore,
        token_key: str,
        clock: Clock,
        *,
        timeout: float = 10.0,
        max_tries: int = 3,
        backoff_base: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._store = store
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_tries = max_tries
        self._backoff_base = backoff_base
        self._rng = rng or random.Random()
        self.token_manager = TokenManager(store, self._fetch_token, token_key, clock)

    async def call(
        self,
        api: str,
        body: Mapping[str, object] | None = None,
        params: QueryParams | None = None,
        method: str = "POST",
    ) -> JsonObject:
        """Call ``/cgi-bin/<api>`` with the access token; return the decoded body when errcode is 0.

        Raises a :class:`~bot.platform.errors.PlatformError` subclass otherwise.
        """
        return await self._authorized(params, lambda query, hide: self._exchange(api, method, query, body, hide=hide))

    async def call_multipart(
        self,
        api: str,
        form: Callable[[], aiohttp.FormData],
        params: QueryParams | None = None,
        *,
        timeout: float | None = None,
    ) -> JsonObject:
        """``POST`` ``multipart/form-data`` to ``/cgi-bin/<api>`` with the same token/errcode handling as
        :meth:`call`. ``form`` builds a fresh body for every attempt: an aiohttp ``FormData`` can be sent once.
        """
        limit = None if timeout is None else aiohttp.ClientTimeout(total=timeout)
        return await self._authorized(
            params,
            lambda query, hide: self._exchange(api, "POST", query, None, hide=hide, form=form(), timeout=limit),
        )

    async def _authorized(
        self, params: QueryParams | None, send: Callable[[QueryParams, tuple[str, ...]], Awaitable[JsonObject]]
    ) -> JsonObject:
        """Run ``send(query, secrets_to_hide)`` with the token; refresh once on an invalid token, back off
        on a retryable errcode (docs/platform.md#access-tokens-and-rate-limits)."""
        refreshed = False
        attempt = 1
        while True:
            token = await self._token()
            query = {**(params or {}), "access_token": token}
            try:
                return await send(query, (token,))
            except TokenInvalid:
                if refreshed:
                    raise
                refreshed = True
                await self._on_token_invalid(token)
            except Retryable:
                if attempt >= self._max_tries:
                    raise
                await self._clock.sleep(self._backoff(attempt))
                attempt += 1

    async def _token(self) -> str:
        """The cached token. Failing to get one means the call was never made: say so (``maybe_sent``)."""
        failed: TransportError | None = None
        try:
            return await self.token_manager.get()
        except TransportError as exc:
            failed = exc
        # raised outside the except block: no __context__ to carry aiohttp's texts
        raise TransportError(failed.api, f"no access token: {failed.errmsg}", maybe_sent=False)

    @abstractmethod
    async def _fetch_token(self) -> tuple[str, int]:
        """Ask the platform for a token: ``(access_token, expires_in seconds)``."""

    async def _on_token_invalid(self, bad_token: str) -> None:
        await self.token_manager.refresh(bad_token)

    async def _token_request(
        self,
        api: str,
        method: str,
        params: QueryParams | None,
        body: Mapping[str, object] | None,
        hide: tuple[str, ...],
    ) -> tuple[str, int]:
        """Call a token endpoint; a 40001 there means our credentials are wrong, not the token."""
        try:
            data = await self._exchange(api, method, params, body, hide=hide, timeout=self.TOKEN_TIMEOUT)
        except TokenInvalid as exc:
            raise CredentialsRejected(exc.api, exc.errcode, exc.errmsg) from None
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise TransportError(api, "token response without access_token/expires_in")
        return token, expires_in

    async def _exchange(
        self,
        api: str,
        method: str,
        params: QueryParams | None,
        body: Mapping[str, object] | None,
        hide: tuple[str, ...],
        *,
        form: aiohttp.FormData | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> JsonObject:
        """One HTTP round trip (a JSON ``body`` or a multipart ``form``). Never lets aiohttp's texts (which
        carry the full URL) escape unredacted."""
        url = f"{self._base_url}/cgi-bin/{api}"
        # ensure_ascii=False: the OA rejects \\u-escaped Chinese in some APIs (errcode 40033).
        data: bytes | aiohttp.FormData | None = (
            form if form is not None else None if body is None else json.dumps(body, ensure_ascii=False).encode()
        )
        headers = {"Content-Type": "application/json; charset=utf-8"} if isinstance(data, bytes) else None
        failure: str | None = None
        unsent = False
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=headers, timeout=timeout or self._timeout
            ) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = f"{type(exc).__name__}: {redact(str(exc), *hide)}"
            unsent = never_sent(exc)
        if failure is not None:
            # Raised outside the except block so __context__ doesn't carry aiohttp's URL (and token).
            raise TransportError(api, failure, maybe_sent=not unsent)
        if status != 200:
            raise TransportError(api, f"HTTP {status}")
        return _decode(api, raw, hide)

    def _backoff(self, attempt: int) -> float:
        """Exponential back-off with jitter: base · 2^(attempt-1) · U[0.5, 1.5)."""
        return float(self._backoff_base * 2 ** (attempt - 1) * (0.5 + self._rng.random()))


def never_sent(exc: BaseException) -> bool:
    """True when the request cannot have reached the platform: the connection was never made."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _decode(api: str, raw: bytes, hide: tuple[str, ...]) -> JsonObject:
    try:
        decoded: Any = json.loads(raw)
    except ValueError:
        raise TransportError(api, "response is not JSON") from None
    if not isinstance(decoded, dict):
        raise TransportError(api, "response is not a JSON object")
    errcode = decoded.get("errcode", 0)
    if not isinstance(errcode, int):
        raise TransportError(api, "errcode is not an integer")
    if errcode != 0:
        errmsg = decoded.get("errmsg")
        raise error_for(api, errcode, redact(errmsg if isinstance(errmsg, str) else "", *hide))
    out: JsonObject = decoded
    return out


def drop_none(**fields: object) -> dict[str, object]:
    """Request body without the optional fields the caller left out (the platform treats absent ≠ null)."""
    return {k: v for k, v in fields.items() if v is not None}
