"""Platform failures as typed exceptions, chosen by ``errcode``.

The outbox decides what to do with a failed call from two facts: the exception type (what happened)
and ``.final`` (whether trying again can ever help). Codes and meanings come from the official
pages (docs/platform.md#error-codes): global codes [W:90313] / OA global return codes
(docs/platform.md#wecom-tokens, #oa-tokens-and-quotas), welcome codes [W:92137]
(docs/platform.md#welcome-messages), customer-service codes (docs/platform.md#customer-service-messages).

Every message is redacted before it is stored: access tokens, secrets and URL query strings never
reach ``str(exc)``, ``repr(exc)`` or ``exc.args`` (aiohttp puts the full request URL, with
``access_token=``, into its own exception texts).
"""

from __future__ import annotations

import re
from typing import ClassVar

_URL_QUERY = re.compile(r"""(https?://[^\s?#'"<>]*)[?#][^\s'"<>]*""")
_SECRET_PARAM = re.compile(r"""(?i)\b(access_token|corpsecret|appsecret|secret|token)=[^&\s'"<>]*""")
_SECRET_JSON = re.compile(r"""(?i)("(?:access_token|corpsecret|appsecret|secret)"\s*:\s*")[^"]*""")


def redact(text: str, *values: str) -> str:
    """Remove known secret ``values``, URL query strings and ``name=value`` credentials from ``text``."""
    for value in values:
        if value:
            text = text.replace(value, "***")
    text = _URL_QUERY.sub(r"\1", text)
    text = _SECRET_PARAM.sub(r"\1=***", text)
    return _SECRET_JSON.sub(r"\1***", text)


class PlatformError(Exception):
    """A WeCom / Official Account call that did not succeed.

    ``errcode`` is the platform's code, or ``None`` when no platform answer was read (network,
    HTTP status, malformed body). ``final`` tells the caller whether retrying can ever help.
    """

    final: ClassVar[bool] = True

    def __init__(self, api: str, errcode: int | None, errmsg: str) -> None:
        self.api = redact(api.split("?", 1)[0])
        self.errcode = errcode
        self.errmsg = redact(errmsg)
        super().__init__(f"{self.api}: errcode={errcode} errmsg={self.errmsg}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api={self.api!r}, errcode={self.errcode!r}, errmsg={self.errmsg!r})"


class ApiError(PlatformError):
    """Any errcode without a dedicated class: the docs say only -1 is worth retrying (docs/platform.md#wecom-tokens)."""


class TokenInvalid(PlatformError):
    """40001 / 40014 / 42001: the access token is wrong, not the latest, or expired → refresh once."""

    final = False


class CredentialsRejected(PlatformError):
    """The token endpoint itself refused our corp id / app id / secret: fix the config, don't retry."""


class Retryable(PlatformError):
    """-1 system busy, 45009 over the frequency limit, 45033 too many concurrent calls.

    WeCom minute-level blocks lift after 60 s (docs/platform.md#wecom-rate-limits); an OA 45009 is the *daily* quota
    (docs/platform.md#oa-tokens-and-quotas).
    """

    final = False


class WelcomeCodeUsed(PlatformError):
    """41051: the customer already got a welcome / started chatting; the code is spent
    (docs/platform.md#welcome-messages)."""


class WelcomeBeingDistributed(PlatformError):
    """41096: another app is sending this welcome right now; a short retry may still succeed
    (docs/platform.md#welcome-messages)."""

    final = False


class OutOfWindow(PlatformError):
    """45015: the OA customer-service window is closed or the user unfollowed
    (docs/platform.md#customer-service-messages)."""


class SendQuotaExceeded(PlatformError):
    """45047: the OA customer-service message quota for this window is used up
    (docs/platform.md#customer-service-messages)."""


class TransportError(PlatformError):
    """No usable platform answer: connection error, timeout, non-200 status, or a body that isn't JSON.

    Not final (the network may recover). ``maybe_sent`` is False only when the request certainly never
    reached the platform (the connection could not be made, or no token to send it with); a timeout, a
    reset or an unreadable answer may follow a call the platform performed (bot/platform/repeat.py).
    """

    final = False

    def __init__(self, api: str, reason: str, *, maybe_sent: bool = True) -> None:
        super().__init__(api, None, reason)
        self.maybe_sent = maybe_sent


class TokenUnavailable(PlatformError):
    """No valid token appeared in the shared store in time (another replica holds the refresh lease)."""

    final = False

    def __init__(self, key: str) -> None:
        super().__init__("token", None, f"no valid access token for {key} in time")


_BY_CODE: dict[int, type[PlatformError]] = {
    40001: TokenInvalid,
    40014: TokenInvalid,
    42001: TokenInvalid,
    -1: Retryable,
    45009: Retryable,
    45033: Retryable,
    41051: WelcomeCodeUsed,
    41096: WelcomeBeingDistributed,
    45015: OutOfWindow,
    45047: SendQuotaExceeded,
}


def error_for(api: str, errcode: int, errmsg: str) -> PlatformError:
    """The typed exception for a non-zero ``errcode`` returned by ``api``."""
    return _BY_CODE.get(errcode, ApiError)(api, errcode, errmsg)
