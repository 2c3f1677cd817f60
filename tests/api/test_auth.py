"""Admin API keys, scopes, rate limits, problem details and the OpenAPI document."""

from __future__ import annotations

import logging

import pytest
from openapi_spec_validator import validate
from sqlalchemy import select

from bot.clock import FrozenClock
from handlers import main
from handlers.api.openapi import openapi_path
from handlers.api.routes import ROUTES, document
from handlers.api.tables import ApiKey
from tests.api.support import Api, make_keys
from tests.support.apps import ClientFactory, start_bot
from tests.support.settings import make_settings


def test_the_openapi_document_is_valid_3_1_and_lists_every_route() -> None:
    spec = document()
    validate(spec)  # openapi-spec-validator picks the 3.1 validator from "openapi": "3.1.0"
    for route in ROUTES:
        assert route.method.lower() in spec["paths"][openapi_path(route)]


async def test_the_document_is_served_without_a_key(api: Api) -> None:
    answer = await api.get("/openapi.json", key=None)
    assert answer.status == 200 and answer.body["openapi"] == "3.1.0"


async def test_no_key_a_wrong_key_and_a_revoked_key_are_401_problems(api: Api) -> None:
    missing = await api.get("/customers", key=None)
    assert missing.status == 401
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.body["status"] == 401 and missing.body["type"].endswith("/401")
    assert (await api.get("/customers", key="siyu_not-a-key")).status == 401
    assert (await api.get("/customers", key="read")).status == 200
    async with api.bot.services.sessions() as session, session.begin():
        row = await session.scalar(select(ApiKey).where(ApiKey.name == "read-key"))
        assert row is not None and row.last_used_at is not None  # used just now
        row.revoked_at = api.bot.services.clock.now()
    revoked = await api.get("/customers", key="read")
    assert revoked.status == 401 and "revoked" in revoked.body["detail"]


async def test_scopes_are_ordered_read_write_admin(api: Api) -> None:
    refused = await api.get("/audit", key="write")
    assert refused.status == 403 and "admin" in refused.body["detail"]
    assert (await api.get("/audit", key="admin")).status == 200
    assert (await api.post("/orders", key="read", json={})).status == 403
    assert (await api.post("/orders", key="write", json={})).status == 400  # through the door, then refused


async def test_each_key_has_its_own_token_bucket(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = await start_bot(aiohttp_client, make_settings(db_url, api={"rate_per_second": 0.5, "burst": 2}), clock)
    api = Api(bot, await make_keys(bot))
    assert [(await api.get("/channels", key="read")).status for _ in range(2)] == [200, 200]
    limited = await api.get("/channels", key="read")
    assert limited.status == 429 and limited.headers["Retry-After"] == "2"
    assert (await api.get("/channels", key="write")).status == 200  # another key, another bucket
    clock.advance(2)
    assert (await api.get("/channels", key="read")).status == 200
    for key in api.keys.values():  # never in a log line, at any level
        assert key not in caplog.text


def test_api_keys_on_the_command_line(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIYU_DATABASE_URL", sqlite_url)
    assert main(["api-keys", "create", "crm-sync", "--scope", "write"]) == 0
    created = capsys.readouterr().out
    key = created.strip().splitlines()[-1]
    assert key.startswith("siyu_") and len(key) > 40
    assert main(["api-keys", "create", "crm-sync"]) == 1  # names are unique
    assert "exists already" in capsys.readouterr().out
    assert main(["api-keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert "crm-sync" in listed and "write" in listed and key not in listed
    assert main(["api-keys", "revoke", "crm-sync"]) == 0
    assert main(["api-keys", "revoke", "nobody"]) == 1
    capsys.readouterr()
    assert main(["api-keys", "list"]) == 0
    assert capsys.readouterr().out.count("-") >= 1
