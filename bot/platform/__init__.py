"""Platform clients: the only place siyu-bot talks HTTP to WeCom and the Official Account.

Handlers and workers use :class:`WeComClient` / :class:`MpClient` and catch
:class:`~bot.platform.errors.PlatformError` subclasses; they never see aiohttp.
"""

from bot.platform.base import JsonObject, PlatformClient
from bot.platform.errors import (
    ApiError,
    CredentialsRejected,
    OutOfWindow,
    PlatformError,
    Retryable,
    SendQuotaExceeded,
    TokenInvalid,
    TokenUnavailable,
    TransportError,
    WelcomeBeingDistributed,
    WelcomeCodeUsed,
    error_for,
)
from bot.platform.mp import MpClient
from bot.platform.tokens import CachedToken, DbTokenStore, RedisTokenStore, TokenManager, TokenStore
from bot.platform.wecom import WeComClient

__all__ = [
    "ApiError",
    "CachedToken",
    "CredentialsRejected",
    "DbTokenStore",
    "JsonObject",
    "MpClient",
    "OutOfWindow",
    "PlatformClient",
    "PlatformError",
    "RedisTokenStore",
    "Retryable",
    "SendQuotaExceeded",
    "TokenInvalid",
    "TokenManager",
    "TokenStore",
    "TokenUnavailable",
    "TransportError",
    "WeComClient",
    "WelcomeBeingDistributed",
    "WelcomeCodeUsed",
    "error_for",
]
