"""Settings for tests: WeCom's and the Official Account's official sample credentials
(docs/platform.md#sample-vectors), the shipped content, and :func:`make_settings` around them.

The fixtures (``settings``, ``db_url``, ``clock`` …) are in ``tests/conftest.py``; modules that need
settings of their own (other sections, a second database) build them here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bot.config import Settings, build_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONTENT = REPO_ROOT / "content"
PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL", "")

# WeCom official sample vector V1 (docs/platform.md#sample-vectors).
WECOM_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
WECOM_AES = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
WECOM_CORP = "ww1436e0e65a779aee"
# Official Account sample vector V4.
MP_TOKEN = "spamtest"
MP_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
MP_APPID = "wx2c2769f8efd9abc2"


def make_settings(db_url: str, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url, "pool_size": 5},
        "wecom": {
            "corp_id": WECOM_CORP,
            "agent_id": 1000002,
            "token": WECOM_TOKEN,
            "encoding_aes_key": WECOM_AES,
            "secret": "test-corp-secret-value",
            "api_base_url": "http://127.0.0.1:9/wecom",
        },
        "official_account": {
            "app_id": MP_APPID,
            "app_secret": "test-app-secret-value",
            "token": MP_TOKEN,
            "encoding_aes_key": MP_AES,
            "api_base_url": "http://127.0.0.1:9/mp",
        },
        "logging": {"level": "WARNING", "format": "text"},
        # The nightly reconciliation would run in any test whose clock passes 03:30 local: on when asked.
        "reconcile": {"nightly": False},
        "content_dir": str(SHIPPED_CONTENT),
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    settings = build_settings(data, env={})
    # Tests sweep and poll by hand (sweep_once, run_due): the background loops wait an hour unless a test
    # asks for its own interval — a setting the config validation would refuse in production.
    inbox, outbox = data.get("inbox", {}), data.get("outbox", {})
    return settings.model_copy(
        update={
            "inbox": settings.inbox
            if "sweep_interval_seconds" in inbox
            else settings.inbox.model_copy(update={"sweep_interval_seconds": 3600}),
            "outbox": settings.outbox
            if "poll_interval_seconds" in outbox
            else settings.outbox.model_copy(update={"poll_interval_seconds": 3600}),
        }
    )
