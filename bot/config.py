"""Configuration: one TOML file, environment overrides, validation that names the bad key.

Every key can be overridden by ``SIYU_<SECTION>_<KEY>`` (e.g. ``SIYU_WECOM_SECRET``,
``SIYU_DATABASE_URL``; ``SIYU_MP_*`` for ``official_account``), which is how secrets are meant to reach
production. Parsing, types, ranges and unknown keys are pydantic-settings' job; this module declares the
sections and the rules pydantic cannot express. Secrets are held in :class:`Secret`, whose ``repr``/``str``
never show the value, so they cannot leak through logs, exceptions or ``repr(settings)``.

The environment is read by :func:`load_settings` / :func:`build_settings` only: ``Settings()`` is the
defaults, as a plain value. Settings are frozen; derive variants with ``model_copy(update=...)``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import core_schema
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

# With PYDANTIC_SETTINGS_DEBUG set, pydantic-settings logs every source's raw values (secrets too) at DEBUG.
logging.getLogger("pydantic_settings").setLevel(logging.INFO)


class ConfigError(ValueError):
    """Configuration problems, one line each: where (file or environment variable), key (``section.key``), why.

    ``key`` and ``reason`` are the first problem's; ``problems`` holds every ``(key, reason, origin)``.
    """

    def __init__(self, key: str, reason: str, origin: str | None = None, *more: tuple[str, str, str | None]) -> None:
        self.key, self.reason = key, reason
        self.problems = [(key, reason, origin), *more]
        super().__init__("\n".join(f"{o or 'config'}: {k + ': ' if k else ''}{r}" for k, r, o in self.problems))


class Secret:
    """A string that never shows itself in repr/str/format (nor in a pydantic dump)."""

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

    @classmethod
    def _from_config(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            return value if type(value) is cls else cls(value.get())
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: object, handler: object) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._from_config, serialization=core_schema.to_string_ser_schema()
        )


def redact_url(url: str) -> str:
    """Hide the password of a database/redis URL (``postgresql://u:***@h/db``).

    Kept instead of SQLAlchemy's ``make_url(url).render_as_string(hide_password=True)`` on purpose: with an
    unescaped ``@`` in the password (``u:p@ss@h``) that prints ``u:***@ss@h`` — part of the password — while
    splitting at the last ``@`` hides all of it (tests/kernel/test_config.py)."""
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


# --- value types: pydantic's lax parsing (env values are strings), minus what today's config refused ---


def _rule(ok: Callable[[str], object], reason: str, *, unset_ok: bool = False) -> AfterValidator:
    """A check pydantic has no keyword for, on the text (a secret's too); ``reason`` never echoes the value."""

    def check(value: Any) -> Any:
        text = value.get() if isinstance(value, Secret) else value
        if not (unset_ok and not text) and not ok(text):
            raise ValueError(reason)
        return value

    return AfterValidator(check)


def _no_bool(value: object) -> object:
    if isinstance(value, bool):  # pydantic would read `port = true` as 1
        raise ValueError("must be a number, not true/false")
    return value


def _bool_word(value: object) -> object:
    if isinstance(value, bool) or (isinstance(value, str) and value.lower() in _BOOL_WORDS):
        return value  # pydantic alone would also take 1, "t" and "y"
    raise ValueError("must be true or false")


def _is_timezone(name: str) -> bool:
    try:
        return bool(zoneinfo.ZoneInfo(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False


_BOOL_WORDS = {"1", "true", "yes", "on", "0", "false", "no", "off"}
_HTTP = ("https://", "http://")
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}
_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_TOKEN = re.compile(r"[A-Za-z0-9]{1,32}")

Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
Bool = Annotated[bool, BeforeValidator(_bool_word)]
UrlPath = Annotated[str, _rule(lambda v: v.startswith("/"), "must start with '/'")]
AesKey = Annotated[Secret, _rule(_AES_KEY.fullmatch, "must be exactly 43 letters or digits", unset_ok=True)]
Token = Annotated[Secret, _rule(_TOKEN.fullmatch, "must be 1-32 letters or digits", unset_ok=True)]
HttpSecret = Annotated[Secret, _rule(lambda v: v.startswith(_HTTP), "must be an http(s) URL", unset_ok=True)]
# whsec_key raises the reason itself (what is wrong, never the value)
WebhookSecret = Annotated[Secret, _rule(whsec_key, "", unset_ok=True)]
SessionSecret = Annotated[
    Secret,
    _rule(lambda v: len(v) >= 32, "must be at least 32 characters (it signs the H5 session cookie)", unset_ok=True),
]
DbURL = Annotated[
    DatabaseURL,
    _rule(
        lambda v: v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")),
        "must start with sqlite+aiosqlite:// or postgresql+asyncpg://",
    ),
]
RedisURL = Annotated[
    DatabaseURL,
    _rule(
        lambda v: v.startswith(("redis://", "rediss://", "unix://")),
        "must be a redis:// or rediss:// URL",
        unset_ok=True,
    ),
]


class _Frozen:
    """Refuses assignment without pydantic's frozen_instance error, which would print the value assigned."""

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: use model_copy(update={{{name!r}: ...}})")


class _Section(_Frozen, BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# --- the sections; every key is documented in config.example.toml ---


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Int = Field(default=8080, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8080"
    wecom_path: UrlPath = "/callback/wecom"
    mp_path: UrlPath = "/callback/mp"
    max_body_bytes: Int = Field(default=65536, ge=1024, le=1 << 22)
    reply_budget_seconds: Float = Field(default=3.0, ge=0.1, le=4.5)  # WeChat waits 5 s
    shutdown_grace_seconds: Float = 10.0
    # Slow clients (``siyu-bot serve``): WeChat sends a small request whole and gives up after 5 s.
    # header_timeout: a request's headers, from connect / its first byte; body_timeout: the body, once the
    # headers are in (408 after); beyond max_connections the oldest idle connection is closed (503 if none is idle).
    header_timeout_seconds: Float = Field(default=5.0, ge=0.1, le=300)
    body_timeout_seconds: Float = Field(default=5.0, ge=0.1, le=300)
    max_connections: Int = Field(default=1000, ge=1, le=1_000_000)
    # Signs the H5 pages' session cookie; the /h5 pages are served only when it is set (≥ 32 chars).
    session_secret: SessionSecret = Secret("")


class DatabaseConfig(_Section):
    url: DbURL = DatabaseURL("sqlite+aiosqlite:///var/siyu.db")
    pool_size: Int = 10
    echo: Bool = False


class WeComConfig(_Section):
    corp_id: str = ""
    agent_id: Int = 0
    token: Token = Secret("")
    encoding_aes_key: AesKey = Secret("")
    secret: Secret = Secret("")
    api_base_url: str = "https://qyapi.weixin.qq.com"

    @property
    def callback_enabled(self) -> bool:
        return bool(self.corp_id and self.token and self.encoding_aes_key)


class OfficialAccountConfig(_Section):
    app_id: str = ""
    app_secret: Secret = Secret("")
    token: Token = Secret("")
    encoding_aes_key: AesKey = Secret("")
    api_base_url: str = "https://api.weixin.qq.com"
    allow_plain: Bool = False
    # Web authorisation (网页授权) page host: <oauth_base_url>/connect/oauth2/authorize
    oauth_base_url: str = "https://open.weixin.qq.com"

    @property
    def callback_enabled(self) -> bool:
        return bool(self.app_id and self.token)


class InboxConfig(_Section):
    # How often pending receipts of dead instances (and failed runs due for a retry) are looked for.
    sweep_interval_seconds: Float = Field(default=1.0, ge=0.05, le=5)
    max_attempts: Int = 5
    # A failed handler run is retried after retry_base · 2^(attempt-1) s: 1, 2, 4, 8 s with the default,
    # so a new friend's receipt still welcomes inside the 20-second welcome_code window.
    retry_base_seconds: Float = Field(default=1.0, ge=0.1, le=10)
    batch_max: Int = Field(default=32, ge=1, le=1000)
    # Handler runs: receipts per transaction at most, and how long a transaction keeps taking more
    # (on SQLite the inbox writer — every callback's ack — waits for it to commit).
    handler_batch_max: Int = Field(default=64, ge=1, le=1000)
    handler_batch_ms: Float = Field(default=20.0, ge=1, le=500)


class OutboxConfig(_Section):
    poll_interval_seconds: Float = 1.0
    max_attempts: Int = 6
    concurrency: Int = 8


class InstancesConfig(_Section):
    """Every process writes a heartbeat; rows held by a process without one are taken over.

    A process restarted on the same host frees its dead predecessor's rows at once (the pid is gone);
    another host's dead replica is taken over ``dead_after_seconds`` + one sweep after its last beat.
    """

    heartbeat_seconds: Float = Field(default=1.0, ge=0.1, le=5)
    dead_after_seconds: Float = 5.0


class RedisConfig(_Section):
    url: RedisURL = DatabaseURL("")


class WebhooksConfig(_Section):
    """Webhooks coming in from the brand's systems (``POST /webhooks/orders``) and going out to them
    (``siyu-bot webhooks``), docs/webhooks.md."""

    orders_secret: WebhookSecret = Secret("")  # Standard Webhooks ``whsec_<base64>``
    tolerance_seconds: Int = Field(default=300, ge=1, le=3600)
    orders_path: UrlPath = "/webhooks/orders"
    # Webhooks going out to the brand's systems (handlers/integrations, ``siyu-bot webhooks``).
    # Targets on loopback, private, link-local, unique-local, multicast or reserved addresses are refused
    # (at ``webhooks add`` and again at every delivery: DNS can change) unless this is true. Cloud metadata
    # addresses (169.254.169.254, fd00:ec2::254) are refused always.
    allow_private_targets: Bool = False
    # One attempt (connect, send, answer) gives up after this many seconds; redirects are never followed.
    delivery_timeout_seconds: Float = Field(default=10.0, ge=0.5, le=60)
    # Deliveries in flight at once, from one process (its own HTTP client: platform calls never wait on it).
    delivery_concurrency: Int = Field(default=16, ge=1, le=256)
    # How often due retries are looked for (new deliveries go out at once, after their commit).
    poll_seconds: Float = Field(default=1.0, ge=0.05, le=60)
    # An endpoint whose deliveries have all failed for this long is disabled and reported.
    disable_after_days: Float = Field(default=3.0, ge=0.01, le=30)


class ApiConfig(_Section):
    """The admin API (``/api/v1/``, docs/api.md): each key's request rate (a token bucket per process)."""

    rate_per_second: Float = Field(default=20.0, gt=0, le=10_000)
    burst: Int = Field(default=40, ge=1, le=100_000)


class AlertsConfig(_Section):
    """Where to POST a small JSON when a receipt ends ``failed`` (bot/alerts.py); empty = no alert hook.

    The URL is kept as a secret: chat-robot webhooks carry their key in it."""

    url: HttpSecret = Secret("")
    timeout_seconds: Float = Field(default=3.0, ge=0.1, le=30)


_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


class ReconcileConfig(_Section):
    """The nightly reconciliation (``siyu-bot reconcile``): compare the platform's lists with what is
    stored, once a day at ``nightly_at`` local time (the configured timezone)."""

    nightly: Bool = True
    nightly_at: Annotated[str, _rule(_HH_MM.fullmatch, "must be HH:MM (24-hour, local time)")] = "03:30"


class LoggingConfig(_Section):
    level: Annotated[str, _rule(lambda v: v.upper() in _LEVELS, "must be DEBUG, INFO, WARNING or ERROR")] = "INFO"
    format: Literal["json", "text"] = "json"


# A dead replica's work must be taken over well inside the 20-second welcome_code window
# (docs/platform.md#welcome-deadline).
TAKEOVER_LIMIT_SECONDS = 10.0


class Settings(_Frozen, BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        env_prefix="SIYU_",
        env_nested_delimiter="_",
        env_nested_max_split=1,  # SIYU_WECOM_CORP_ID is wecom.corp_id, not wecom.corp.id
    )

    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    wecom: WeComConfig = WeComConfig()
    official_account: OfficialAccountConfig = OfficialAccountConfig()
    inbox: InboxConfig = InboxConfig()
    outbox: OutboxConfig = OutboxConfig()
    instances: InstancesConfig = InstancesConfig()
    redis: RedisConfig = RedisConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    api: ApiConfig = ApiConfig()
    alerts: AlertsConfig = AlertsConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    logging: LoggingConfig = LoggingConfig()
    timezone: Annotated[str, _rule(_is_timezone, "unknown IANA timezone")] = "Asia/Shanghai"
    content_dir: str = "content"
    # How often each replica looks for a newly published content revision (a publish is in force on every
    # replica within this; the console promises 5 s).
    content_poll_seconds: Float = Field(default=2.0, ge=0.1, le=5.0)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # Settings(...) is a plain value; the loaders below add the environment

    @model_validator(mode="after")
    def _rules_across_keys(self) -> Settings:
        """The rules between keys, all reported (they run once every key is valid on its own)."""
        wecom, oa, h5 = self.wecom, self.official_account, bool(self.server.session_secret)
        inst = self.instances
        worst = inst.dead_after_seconds + max(self.inbox.sweep_interval_seconds, self.outbox.poll_interval_seconds)
        rules = [
            (wecom.token and not wecom.corp_id, "wecom.corp_id", "is required when wecom.token is set"),
            (wecom.token and not wecom.encoding_aes_key, "wecom.encoding_aes_key",
             "is required: WeCom callbacks are always encrypted"),
            (oa.token and not oa.app_id, "official_account.app_id", "is required when official_account.token is set"),
            (oa.token and not oa.allow_plain and not oa.encoding_aes_key, "official_account.encoding_aes_key",
             "is required unless official_account.allow_plain = true (safe mode is the default)"),
            (inst.dead_after_seconds < 3 * inst.heartbeat_seconds, "instances.dead_after_seconds",
             "must be at least 3 heartbeats (a busy process is not dead)"),
            (worst > TAKEOVER_LIMIT_SECONDS, "instances.dead_after_seconds",
             f"with the sweep/poll interval a dead replica's work would wait {worst:g} s; "
             f"must be ≤ {TAKEOVER_LIMIT_SECONDS:g} s (welcome_code lives 20 s)"),
            (h5 and not oa.app_id, "official_account.app_id",
             "is required for the H5 pages (server.session_secret is set)"),
            (h5 and not oa.oauth_base_url.startswith(_HTTP), "official_account.oauth_base_url",
             "must be an http(s) URL"),
        ]  # fmt: skip
        problems = [(key, reason, None) for bad, key, reason in rules if bad]
        if problems:
            raise ConfigError(*problems[0], *problems[1:])
        return self


class _Environment(EnvSettingsSource):
    """``SIYU_<SECTION>_<KEY>`` from a given mapping (not necessarily ``os.environ``); ``SIYU_MP_*`` is
    ``official_account``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        ours = {k: v for k, v in environ.items() if k.startswith("SIYU_")}  # the rest of the name in any case
        self._environ = {re.sub(r"^SIYU_MP_", "SIYU_OFFICIAL_ACCOUNT_", k, flags=re.I): v for k, v in ours.items()}
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _origin(key: str, environ: Mapping[str, str], file: str | None) -> str | None:
    """Where the value of ``key`` came from: its environment variable if set, else the file."""
    names = {k.upper() for k in environ}
    for var in (f"SIYU_{key}", f"SIYU_{key.replace('official_account.', 'mp.')}"):
        if (var := var.replace(".", "_").upper()) in names:
            return f"environment {var}"
    return file


def _problem(error: Any) -> list[tuple[str, str]]:
    """``(key, reason)`` of one pydantic error; never its input (it may be a secret)."""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):
        return [(k, r) for k, r, _ in cause.problems]
    loc = [str(part) for part in error["loc"]]
    reason = str(cause) if isinstance(cause, ValueError) else error["msg"].replace("Input should be", "must be")
    if error["type"] == "extra_forbidden":
        section = Settings.model_fields.get(loc[0]) if len(loc) == 2 else None
        known = getattr(section.annotation, "model_fields", {}) if section else {}
        reason = f"unknown key (known: {', '.join(sorted(known))})" if known else "unknown section or key"
    return [(".".join(loc), reason)]


def _settings(data: Mapping[str, Any], environ: Mapping[str, str], file: str | None) -> Settings:
    try:
        sources = (_Environment(environ), InitSettingsSource(Settings, dict(data)))
        return Settings(_build_sources=(sources, {}))  # type: ignore[call-arg]  # BaseSettings' own parameter
    except ValidationError as exc:
        problems = [p for e in exc.errors(include_url=False, include_input=False) for p in _problem(e)]
        located = [(k, r, _origin(k, environ, file)) for k, r in problems]
        raise ConfigError(*located[0], *located[1:]) from None
    except SettingsError as exc:  # SIYU_<SECTION> alone, not a JSON object (its value is not in the message)
        raise ConfigError("", f"{exc}; set SIYU_<SECTION>_<KEY> instead", "environment") from None


def build_settings(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Validate a parsed TOML mapping (plus env overrides, ``os.environ`` by default) into :class:`Settings`."""
    return _settings(data, os.environ if env is None else env, None)


def load_settings(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Settings:
    """Load the TOML file at ``path`` (``None``: defaults plus environment only)."""
    if path is None:
        return build_settings({}, env)
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("", "file not found", str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}", str(path)) from None
    return _settings(_relative_to(Path(path).absolute().parent, data), os.environ if env is None else env, str(path))


SQLITE_PREFIX = "sqlite+aiosqlite:///"


def _relative_to(base: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The file's (and the defaults') relative paths, ``content_dir`` and the SQLite database file, made
    absolute against ``base`` (the config file's folder), so a command means the same files from any
    working directory. Environment overrides are taken as given (relative to the working directory);
    values of the wrong type are left for validation to report."""
    out = dict(data)
    content_dir = out.get("content_dir", Settings.model_fields["content_dir"].default)
    if isinstance(content_dir, str) and content_dir:
        out["content_dir"] = str(base / content_dir)
    database = out.get("database", {})
    if isinstance(database, dict):
        url = database.get("url", DatabaseConfig.model_fields["url"].default.get())
        if isinstance(url, str) and url.startswith(SQLITE_PREFIX):
            path, query = url.removeprefix(SQLITE_PREFIX), ""
            if "?" in path:
                path, query = path.split("?", 1)
                query = "?" + query
            if path and path != ":memory:" and not path.startswith("file:") and not Path(path).is_absolute():
                url = f"{SQLITE_PREFIX}{base / path}{query}"
        out["database"] = {**database, "url": url}
    return out


def secret_values(settings: Settings) -> list[str]:
    """Every secret string in ``settings``: the log filter masks these wherever they appear."""
    out: list[str] = []
    sections = [getattr(settings, name) for name in type(settings).model_fields]
    for section in (s for s in sections if isinstance(s, BaseModel)):
        for value in (getattr(section, name) for name in type(section).model_fields):
            if isinstance(value, DatabaseURL):
                pw = urlsplit(value.get()).password if value.get() else None
                if pw:
                    out += [pw, unquote(pw)]  # as written in the URL and as sent to the server
            elif isinstance(value, Secret) and value.get():
                out.append(value.get())
                if value.get().startswith("whsec_"):
                    out.append(value.get()[6:])  # the key alone, should it ever be logged without its prefix
    return out
