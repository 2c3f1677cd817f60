"""Configuration: one TOML file, environment overrides, validation that names the bad key.

Every key can be overridden by ``SIYU_<SECTION>_<KEY>`` (e.g. ``SIYU_WECOM_SECRET``,
``SIYU_DATABASE_URL``), which is how secrets are meant to reach production. Secrets are held in
:class:`Secret`, whose ``repr``/``str`` never show the value, so they cannot leak through logs,
exceptions or ``repr(settings)``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit


class ConfigError(ValueError):
    """A configuration problem, always naming the key (``section.key``) and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config {key}: {reason}")
        self.key = key
        self.reason = reason


class Secret:
    """A string that never shows itself in repr/str/format."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str) -> str:
    """Hide the password of a database/redis URL (``postgresql://u:***@h/db``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class DatabaseURL(Secret):
    """A database URL: its password is a secret, the rest is useful in logs."""

    def __repr__(self) -> str:
        return f"DatabaseURL({redact_url(self._value)!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"
    wecom_path: str = "/callback/wecom"
    mp_path: str = "/callback/mp"
    max_body_bytes: int = 65536
    reply_budget_seconds: float = 3.0
    shutdown_grace_seconds: float = 10.0
    # Slow clients (``siyu-bot serve``): WeChat sends a small request whole and gives up after 5 s.
    header_timeout_seconds: float = 5.0  # a request's headers, from connect / its first byte
    body_timeout_seconds: float = 5.0  # the body, once the headers are in (408 after)
    max_connections: int = 1000  # beyond it the oldest idle connection is closed (503 if none is idle)
    # Signs the H5 pages' session cookie; the /h5 pages are served only when it is set (≥ 32 chars).
    session_secret: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True)
class DatabaseConfig:
    url: DatabaseURL = field(default_factory=lambda: DatabaseURL("sqlite+aiosqlite:///var/siyu.db"))
    pool_size: int = 10
    echo: bool = False


@dataclass(frozen=True)
class WeComConfig:
    corp_id: str = ""
    agent_id: int = 0
    token: Secret = field(default_factory=lambda: Secret(""))
    encoding_aes_key: Secret = field(default_factory=lambda: Secret(""))
    secret: Secret = field(default_factory=lambda: Secret(""))
    api_base_url: str = "https://qyapi.weixin.qq.com"

    @property
    def callback_enabled(self) -> bool:
        return bool(self.corp_id and self.token and self.encoding_aes_key)


@dataclass(frozen=True)
class OfficialAccountConfig:
    app_id: str = ""
    app_secret: Secret = field(default_factory=lambda: Secret(""))
    token: Secret = field(default_factory=lambda: Secret(""))
    encoding_aes_key: Secret = field(default_factory=lambda: Secret(""))
    api_base_url: str = "https://api.weixin.qq.com"
    allow_plain: bool = False
    # Web authorisation (网页授权) page host: <oauth_base_url>/connect/oauth2/authorize
    oauth_base_url: str = "https://open.weixin.qq.com"

    @property
    def callback_enabled(self) -> bool:
        return bool(self.app_id and self.token)


@dataclass(frozen=True)
class InboxConfig:
    # How often pending receipts of dead instances (and failed runs due for a retry) are looked for.
    sweep_interval_seconds: float = 1.0
    max_attempts: int = 5
    # A failed handler run is retried after retry_base · 2^(attempt-1) s: 1, 2, 4, 8 s with the default,
    # so a new friend's receipt still welcomes inside the 20-second welcome_code window.
    retry_base_seconds: float = 1.0
    batch_max: int = 32


@dataclass(frozen=True)
class OutboxConfig:
    poll_interval_seconds: float = 1.0
    max_attempts: int = 6
    concurrency: int = 8


@dataclass(frozen=True)
class InstancesConfig:
    """Every process writes a heartbeat; rows held by a process without one are taken over.

    A process restarted on the same host frees its dead predecessor's rows at once (the pid is gone);
    another host's dead replica is taken over ``dead_after_seconds`` + one sweep after its last beat.
    """

    heartbeat_seconds: float = 1.0
    dead_after_seconds: float = 5.0


@dataclass(frozen=True)
class RedisConfig:
    url: DatabaseURL = field(default_factory=lambda: DatabaseURL(""))


@dataclass(frozen=True)
class WebhooksConfig:
    """Webhooks coming in from the brand's systems (``POST /webhooks/orders``, docs/webhooks.md)."""

    orders_secret: Secret = field(default_factory=lambda: Secret(""))  # Standard Webhooks ``whsec_<base64>``
    tolerance_seconds: int = 300
    orders_path: str = "/webhooks/orders"


def whsec_key(value: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64 of ≥ 24 random bytes)."""
    if not value.startswith("whsec_"):
        raise ValueError("must start with 'whsec_' (Standard Webhooks secret)")
    try:
        key = base64.b64decode(value[6:], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be 'whsec_' followed by valid base64") from None
    if len(key) < 24:
        raise ValueError(f"must decode to at least 24 bytes, got {len(key)}")
    return key


@dataclass(frozen=True)
class AlertsConfig:
    """Where to POST a small JSON when a receipt ends ``failed`` (bot/alerts.py); empty = no alert hook.

    The URL is kept as a secret: chat-robot webhooks carry their key in it."""

    url: Secret = field(default_factory=lambda: Secret(""))
    timeout_seconds: float = 3.0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True)
class Settings:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    wecom: WeComConfig = field(default_factory=WeComConfig)
    official_account: OfficialAccountConfig = field(default_factory=OfficialAccountConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    instances: InstancesConfig = field(default_factory=InstancesConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    timezone: str = "Asia/Shanghai"
    content_dir: str = "content"

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "database": DatabaseConfig,
    "wecom": WeComConfig,
    "official_account": OfficialAccountConfig,
    "inbox": InboxConfig,
    "outbox": OutboxConfig,
    "instances": InstancesConfig,
    "redis": RedisConfig,
    "webhooks": WebhooksConfig,
    "alerts": AlertsConfig,
    "logging": LoggingConfig,
}
_TOP_LEVEL = {"timezone", "content_dir"}
_ENV_SECTION_ALIASES = {"mp": "official_account"}


def _coerce(key: str, raw: Any, default: Any) -> Any:
    """Convert ``raw`` (from TOML or env) to the type of ``default``, or raise ConfigError."""
    if isinstance(default, Secret):
        if not isinstance(raw, str):
            raise ConfigError(key, "must be a string")
        return type(default)(raw)
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(key, f"must be true or false, got {raw!r}")
    if isinstance(default, int):
        try:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a number, got {raw!r}") from None
    if not isinstance(raw, str):
        raise ConfigError(key, f"must be a string, got {type(raw).__name__}")
    return raw


def _build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{name}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    defaults = cls()
    kwargs = {k: _coerce(f"{name}.{k}", v, getattr(defaults, k)) for k, v in values.items()}
    return cls(**kwargs)


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for var, value in env.items():
        if not var.startswith("SIYU_"):
            continue
        rest = var[5:].lower()
        if rest in _TOP_LEVEL:
            out.setdefault("", {})[rest] = value
            continue
        for section in sorted([*_SECTIONS, *_ENV_SECTION_ALIASES], key=len, reverse=True):
            if rest.startswith(section + "_"):
                real = _ENV_SECTION_ALIASES.get(section, section)
                out.setdefault(real, {})[rest[len(section) + 1 :]] = value
                break
    return out


def _merge(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, values in _env_overrides(env).items():
        if section == "":
            merged.update(values)
        else:
            target = merged.setdefault(section, {})
            if isinstance(target, dict):
                target.update(values)
    return merged


def build_settings(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Validate a parsed TOML mapping (plus env overrides) into :class:`Settings`."""
    merged = _merge(dict(data), os.environ if env is None else env)
    kwargs: dict[str, Any] = {}
    for key, value in merged.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(key, "must be a table")
            kwargs[key] = _build_section(key, _SECTIONS[key], value)
        elif key in _TOP_LEVEL:
            kwargs[key] = _coerce(key, value, getattr(Settings(), key))
        else:
            raise ConfigError(key, "unknown section or key")
    settings = Settings(**kwargs)
    _validate(settings)
    return settings


_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{1,32}$")


def _validate(s: Settings) -> None:
    try:
        zoneinfo.ZoneInfo(s.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError("timezone", f"unknown IANA timezone {s.timezone!r}") from None
    if not 0 < s.server.port < 65536:
        raise ConfigError("server.port", "must be between 1 and 65535")
    if not 1024 <= s.server.max_body_bytes <= 1 << 22:
        raise ConfigError("server.max_body_bytes", "must be between 1024 and 4194304")
    if not 1 <= s.inbox.batch_max <= 1000:
        raise ConfigError("inbox.batch_max", "must be between 1 and 1000")
    for name, seconds in (
        ("server.header_timeout_seconds", s.server.header_timeout_seconds),
        ("server.body_timeout_seconds", s.server.body_timeout_seconds),
    ):
        if not 0.1 <= seconds <= 300:
            raise ConfigError(name, "must be between 0.1 and 300 seconds")
    if not 1 <= s.server.max_connections <= 1_000_000:
        raise ConfigError("server.max_connections", "must be between 1 and 1000000")
    if not 0.1 <= s.server.reply_budget_seconds <= 4.5:
        raise ConfigError("server.reply_budget_seconds", "must be between 0.1 and 4.5 (WeChat waits 5 s)")
    for name, path in (("server.wecom_path", s.server.wecom_path), ("server.mp_path", s.server.mp_path)):
        if not path.startswith("/"):
            raise ConfigError(name, "must start with '/'")
    url = s.database.url.get()
    if not (url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://")):
        raise ConfigError("database.url", "must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    redis_url = s.redis.url.get()
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis.url", "must be a redis:// or rediss:// URL")
    for section, cfg in (("wecom", s.wecom), ("official_account", s.official_account)):
        key = cfg.encoding_aes_key.get()
        if key and not _AES_KEY.match(key):
            raise ConfigError(f"{section}.encoding_aes_key", "must be exactly 43 letters or digits")
        token = cfg.token.get()
        if token and not _TOKEN.match(token):
            raise ConfigError(f"{section}.token", "must be 1-32 letters or digits")
    if s.wecom.token and not s.wecom.corp_id:
        raise ConfigError("wecom.corp_id", "is required when wecom.token is set")
    if s.wecom.token and not s.wecom.encoding_aes_key:
        raise ConfigError("wecom.encoding_aes_key", "is required: WeCom callbacks are always encrypted")
    oa = s.official_account
    if oa.token and not oa.app_id:
        raise ConfigError("official_account.app_id", "is required when official_account.token is set")
    if oa.token and not oa.allow_plain and not oa.encoding_aes_key:
        raise ConfigError(
            "official_account.encoding_aes_key",
            "is required unless official_account.allow_plain = true (safe mode is the default)",
        )
    _validate_takeover(s)
    _validate_webhooks(s.webhooks)
    _validate_alerts(s.alerts)
    _validate_h5(s)
    if s.logging.format not in {"json", "text"}:
        raise ConfigError("logging.format", "must be 'json' or 'text'")
    if s.logging.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("logging.level", "must be DEBUG, INFO, WARNING or ERROR")


# A dead replica's work must be taken over well inside the 20-second welcome_code window
# (docs/platform.md#welcome-deadline).
TAKEOVER_LIMIT_SECONDS = 10.0


def _validate_takeover(s: Settings) -> None:
    inst, inbox = s.instances, s.inbox
    if not 0.1 <= inst.heartbeat_seconds <= 5:
        raise ConfigError("instances.heartbeat_seconds", "must be between 0.1 and 5")
    if inst.dead_after_seconds < 3 * inst.heartbeat_seconds:
        raise ConfigError("instances.dead_after_seconds", "must be at least 3 heartbeats (a busy process is not dead)")
    if not 0.05 <= inbox.sweep_interval_seconds <= 5:
        raise ConfigError("inbox.sweep_interval_seconds", "must be between 0.05 and 5")
    worst = inst.dead_after_seconds + max(inbox.sweep_interval_seconds, s.outbox.poll_interval_seconds)
    if worst > TAKEOVER_LIMIT_SECONDS:
        raise ConfigError(
            "instances.dead_after_seconds",
            f"with the sweep/poll interval a dead replica's work would wait {worst:g} s; must be ≤ "
            f"{TAKEOVER_LIMIT_SECONDS:g} s (welcome_code lives 20 s)",
        )
    if not 0.1 <= inbox.retry_base_seconds <= 10:
        raise ConfigError("inbox.retry_base_seconds", "must be between 0.1 and 10")


def _validate_webhooks(w: WebhooksConfig) -> None:
    if w.orders_secret:
        try:
            whsec_key(w.orders_secret.get())
        except ValueError as exc:
            raise ConfigError("webhooks.orders_secret", str(exc)) from None
    if not 1 <= w.tolerance_seconds <= 3600:
        raise ConfigError("webhooks.tolerance_seconds", "must be between 1 and 3600")
    if not w.orders_path.startswith("/"):
        raise ConfigError("webhooks.orders_path", "must start with '/'")


def _validate_alerts(a: AlertsConfig) -> None:
    if a.url and not a.url.get().startswith(("https://", "http://")):
        raise ConfigError("alerts.url", "must be an http(s) URL")  # the value is never echoed: it may hold a key
    if not 0.1 <= a.timeout_seconds <= 30:
        raise ConfigError("alerts.timeout_seconds", "must be between 0.1 and 30")


def _validate_h5(s: Settings) -> None:
    secret = s.server.session_secret.get()
    if not secret:
        return
    if len(secret) < 32:
        raise ConfigError("server.session_secret", "must be at least 32 characters (it signs the H5 session cookie)")
    if not s.official_account.app_id:
        raise ConfigError("official_account.app_id", "is required for the H5 pages (server.session_secret is set)")
    if not s.official_account.oauth_base_url.startswith(("https://", "http://")):
        raise ConfigError("official_account.oauth_base_url", "must be an http(s) URL")


def load_settings(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Settings:
    """Load the TOML file at ``path`` (``None``: defaults plus environment only)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(str(p), "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(p), f"not valid TOML: {exc}") from None
    return build_settings(data, env)


def secret_values(settings: Settings) -> list[str]:
    """Every secret string in ``settings``: the log filter masks these wherever they appear."""
    out: list[str] = []
    for section_field in fields(settings):
        section = getattr(settings, section_field.name)
        if not is_dataclass(section):
            continue
        for f in fields(section):
            value = getattr(section, f.name)
            if isinstance(value, DatabaseURL):
                pw = urlsplit(value.get()).password if value.get() else None
                if pw:
                    out += [pw, unquote(pw)]  # as written in the URL and as sent to the server
            elif isinstance(value, Secret) and value.get():
                out.append(value.get())
                if value.get().startswith("whsec_"):
                    out.append(value.get()[6:])  # the key alone, should it ever be logged without its prefix
    return out
