"""Config: every key documented and validated with its name; secrets never shown."""

from __future__ import annotations

import logging
import tomllib
import traceback
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import ConfigError, Settings, build_settings, load_settings, secret_values
from bot.logs import RedactSecrets
from tests.support.settings import REPO_ROOT


def test_example_config_loads_and_documents_every_section() -> None:
    settings = load_settings(REPO_ROOT / "config.example.toml", env={})
    assert settings.timezone == "Asia/Shanghai"
    data = tomllib.loads((REPO_ROOT / "config.example.toml").read_text(encoding="utf-8"))
    for name, field in Settings.model_fields.items():
        assert name in data, f"config.example.toml lacks {name}"
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            for key in section.model_fields:
                assert key in data[name], f"config.example.toml lacks {name}.{key}"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"server": {"port": "eighty"}}, "server.port"),
        ({"server": {"nope": 1}}, "server.nope"),
        ({"wecom": {"corp_id": "ww1", "token": "t", "encoding_aes_key": "short"}}, "wecom.encoding_aes_key"),
        ({"wecom": {"token": "abc"}}, "wecom.corp_id"),
        ({"official_account": {"app_id": "wx1", "token": "t"}}, "official_account.encoding_aes_key"),
        ({"database": {"url": "mysql://x"}}, "database.url"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"surprise": {}}, "surprise"),
        ({"server": {"reply_budget_seconds": 6}}, "server.reply_budget_seconds"),
        ({"server": {"header_timeout_seconds": 0}}, "server.header_timeout_seconds"),
        ({"server": {"body_timeout_seconds": 301}}, "server.body_timeout_seconds"),
        ({"server": {"max_connections": 0}}, "server.max_connections"),
        ({"server": {"port": 0}}, "server.port"),
        ({"server": {"port": True}}, "server.port"),
        ({"server": {"host": 5}}, "server.host"),
        ({"server": {"max_body_bytes": 1023}}, "server.max_body_bytes"),
        ({"server": {"wecom_path": "callback"}}, "server.wecom_path"),
        ({"server": {"session_secret": "short"}}, "server.session_secret"),
        ({"server": {"session_secret": "s" * 32}}, "official_account.app_id"),
        (
            {"server": {"session_secret": "s" * 32}, "official_account": {"app_id": "wx1", "oauth_base_url": "x"}},
            "official_account.oauth_base_url",
        ),
        ({"server": []}, "server"),
        ({"database": {"echo": 1}}, "database.echo"),
        ({"wecom": {"corp_id": "ww1", "token": "not-a-token!", "encoding_aes_key": "A" * 43}}, "wecom.token"),
        ({"wecom": {"corp_id": "ww1", "token": "t"}}, "wecom.encoding_aes_key"),
        ({"official_account": {"token": "t", "allow_plain": True}}, "official_account.app_id"),
        ({"official_account": {"allow_plain": "maybe"}}, "official_account.allow_plain"),
        ({"redis": {"url": "http://cache"}}, "redis.url"),
        ({"inbox": {"batch_max": 1001}}, "inbox.batch_max"),
        ({"inbox": {"sweep_interval_seconds": 0.01}}, "inbox.sweep_interval_seconds"),
        ({"inbox": {"retry_base_seconds": 11}}, "inbox.retry_base_seconds"),
        ({"instances": {"heartbeat_seconds": 6}}, "instances.heartbeat_seconds"),
        ({"instances": {"heartbeat_seconds": 2, "dead_after_seconds": 5}}, "instances.dead_after_seconds"),
        # the take-over: dead_after + max(sweep, poll) ≤ 10 s, whichever of them is long
        ({"instances": {"dead_after_seconds": 9.5}}, "instances.dead_after_seconds"),
        (
            {"instances": {"dead_after_seconds": 6}, "outbox": {"poll_interval_seconds": 4.5}},
            "instances.dead_after_seconds",
        ),
        ({"webhooks": {"tolerance_seconds": 0}}, "webhooks.tolerance_seconds"),
        ({"webhooks": {"orders_path": "orders"}}, "webhooks.orders_path"),
        ({"alerts": {"url": "ftp://x"}}, "alerts.url"),
        ({"alerts": {"timeout_seconds": 31}}, "alerts.timeout_seconds"),
        ({"logging": {"format": "xml"}}, "logging.format"),
        ({"logging": {"level": "LOUD"}}, "logging.level"),
        ({"mp": {"app_id": "wx1"}}, "mp"),  # SIYU_MP_* is an environment shorthand, not a section name
    ],
)
def test_bad_config_names_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_settings(data, env={})
    assert exc.value.key == key


def test_environment_overrides_secrets_and_they_never_show() -> None:
    env = {
        "SIYU_WECOM_SECRET": "corp-secret-XYZ123",
        "SIYU_MP_APP_SECRET": "app-secret-ABC987",
        "SIYU_DATABASE_URL": "postgresql+asyncpg://bot:pa55word@db/siyu",
        "SIYU_TIMEZONE": "Asia/Shanghai",
    }
    s = build_settings({"wecom": {"secret": "from-file"}}, env=env)
    assert s.wecom.secret.get() == "corp-secret-XYZ123"
    assert s.official_account.app_secret.get() == "app-secret-ABC987"
    text = repr(s) + str(s)
    for secret in ("corp-secret-XYZ123", "app-secret-ABC987", "pa55word"):
        assert secret not in text
    assert "postgresql+asyncpg://bot:***@db/siyu" in text
    assert set(secret_values(s)) >= {"corp-secret-XYZ123", "app-secret-ABC987", "pa55word"}


def test_log_filter_masks_secrets_and_access_tokens(caplog: pytest.LogCaptureFixture) -> None:
    flt = RedactSecrets(["corp-secret-XYZ123"])
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "boom %s", ("corp-secret-XYZ123",), None)
    flt.filter(record)
    assert "corp-secret-XYZ123" not in record.getMessage()
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "GET /cgi-bin/x?access_token=TOKENVALUE&a=1", None, None)
    flt.filter(record)
    assert "TOKENVALUE" not in record.getMessage()


def test_defaults_are_a_valid_configuration_and_settings_alone_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIYU_WECOM_SECRET", "from-the-environment")
    assert build_settings({}, env={}) == Settings()
    assert not Settings().wecom.secret  # a plain value: only the loaders read the environment
    assert build_settings({}).wecom.secret.get() == "from-the-environment"  # os.environ by default
    s = Settings()
    assert (s.server.port, s.server.reply_budget_seconds, s.database.url.get(), s.logging.level) == (
        8080,
        3.0,
        "sqlite+aiosqlite:///var/siyu.db",
        "INFO",
    )


def test_environment_values_are_parsed_and_override_the_file() -> None:
    env = {
        "SIYU_SERVER_PORT": "8081",
        "SIYU_SERVER_REPLY_BUDGET_SECONDS": "2.5",
        "SIYU_DATABASE_ECHO": "yes",
        "SIYU_OFFICIAL_ACCOUNT_APP_ID": "wx-long",
        "SIYU_MP_ALLOW_PLAIN": "on",
        "SIYU_CONTENT_DIR": "/srv/content",
        "SIYU_TEST_DATABASE_URL": "not a setting",  # no section of that name: ignored
    }
    s = build_settings({"server": {"port": 9000, "host": "0.0.0.0"}}, env=env)
    assert (s.server.port, s.server.host, s.server.reply_budget_seconds) == (8081, "0.0.0.0", 2.5)
    assert s.database.echo and s.official_account.allow_plain and s.official_account.app_id == "wx-long"
    assert s.content_dir == "/srv/content"


def test_unknown_keys_are_refused_from_the_file_and_the_environment() -> None:
    with pytest.raises(ConfigError) as exc:
        build_settings({"wecom": {"corpid": "ww1"}}, env={})
    assert exc.value.key == "wecom.corpid" and "unknown key" in exc.value.reason and "corp_id" in exc.value.reason
    with pytest.raises(ConfigError) as exc:
        build_settings({}, env={"SIYU_WECOM_CORPID": "ww1"})
    assert str(exc.value).startswith("environment SIYU_WECOM_CORPID: wecom.corpid: unknown key")


def test_a_bad_file_names_file_key_and_reason_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "siyu.toml"
    path.write_text('[server]\nport = "eighty"\nwecom_path = "cb"\n[logging]\nformat = "xml"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, env={"SIYU_INBOX_BATCH_MAX": "0"})
    lines = str(exc.value).splitlines()
    assert len(lines) == len(exc.value.problems) == 4
    expected = [
        (str(path), "server.port", "integer"),
        (str(path), "server.wecom_path", "must start with '/'"),
        ("environment SIYU_INBOX_BATCH_MAX", "inbox.batch_max", "greater than or equal to 1"),
        (str(path), "logging.format", "'json' or 'text'"),
    ]
    for line, (origin, key, reason) in zip(lines, expected, strict=True):
        assert line.startswith(f"{origin}: {key}: ") and reason in line, line
    assert exc.value.key == "server.port"


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: file not found"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_settings(bad, env={})


@pytest.mark.parametrize(
    ("data", "secret"),
    [
        ({"wecom": {"corp_id": "ww1", "token": "Tok-en-Secret!", "encoding_aes_key": "A" * 43}}, "Tok-en-Secret!"),
        ({"wecom": {"corp_id": "ww1", "token": "abc", "encoding_aes_key": "AesSecretTooShort"}}, "AesSecretTooShort"),
        ({"database": {"url": "mysql://bot:DbPassw0rd@db/siyu"}}, "DbPassw0rd"),
        ({"redis": {"url": "http://:RedisPassw0rd@cache"}}, "RedisPassw0rd"),
        ({"alerts": {"url": "ftp://hooks/key=HookKey123"}}, "HookKey123"),
        ({"server": {"session_secret": "ShortSessionSecret"}}, "ShortSessionSecret"),
        ({"webhooks": {"orders_secret": "whsec_NotBase64!!Secret"}}, "NotBase64!!Secret"),
    ],
)
def test_errors_never_echo_a_secret(data: dict[str, object], secret: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_settings(data, env={})
    shown = "".join(traceback.format_exception(exc.value)) + repr(exc.value) + repr(exc.value.problems)
    assert secret not in shown
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # no pydantic error with the input


def test_settings_are_frozen_and_copies_are_made_with_model_copy() -> None:
    s = build_settings({"wecom": {"secret": "corp-secret-XYZ123"}}, env={})
    with pytest.raises(AttributeError) as exc:
        s.wecom.secret = "new-secret-ABC"  # type: ignore[misc]
    assert "new-secret-ABC" not in str(exc.value)
    with pytest.raises(AttributeError):
        s.timezone = "UTC"  # type: ignore[misc]
    # model_copy does not validate: tests use it for intervals production refuses (tests/support/settings.py)
    slow = s.model_copy(update={"inbox": s.inbox.model_copy(update={"sweep_interval_seconds": 3600})})
    assert slow.inbox.sweep_interval_seconds == 3600 and s.inbox.sweep_interval_seconds == 1.0
    assert slow.wecom is s.wecom and hash(s) == hash(s.model_copy())
    assert "corp-secret-XYZ123" not in s.model_dump_json() + repr(s.model_dump())


def test_redact_url_hides_the_whole_password_even_with_an_unescaped_at() -> None:
    from bot.config import redact_url

    assert redact_url("postgresql+asyncpg://app:s3cret@db.example.com:5432/siyu") == (
        "postgresql+asyncpg://app:***@db.example.com:5432/siyu"
    )
    assert "ss" not in redact_url("postgresql://u:p@ss@h/db")  # make_url would print u:***@ss@h
    assert redact_url("redis://:tok@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("sqlite+aiosqlite:///var/siyu.db") == "sqlite+aiosqlite:///var/siyu.db"
