"""Config: every key documented and validated with its name; secrets never shown."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from bot.config import ConfigError, build_settings, load_settings, secret_values
from bot.logs import RedactSecrets

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_loads_and_documents_every_section() -> None:
    settings = load_settings(ROOT / "config.example.toml", env={})
    assert settings.timezone == "Asia/Shanghai"
    data = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    from dataclasses import fields

    from bot.config import _SECTIONS

    for section, cls in _SECTIONS.items():
        assert section in data, f"config.example.toml lacks [{section}]"
        for f in fields(cls):
            assert f.name in data[section], f"config.example.toml lacks {section}.{f.name}"


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
