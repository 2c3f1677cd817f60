"""No log line, at any level, shows a secret, an access token or a SQL parameter dump.

The app runs with the production log set-up (``configure_logging``, JSON) at DEBUG on every logger —
SQLAlchemy's engine (statements and result rows), aiosqlite, asyncpg, aiohttp (access log included),
asyncio — through fault scenarios whose error texts naturally carry secrets: the token store failing to
save a freshly fetched token (SQLAlchemy's error text lists the statement's parameters), a platform
call failing in transport (aiohttp's error text carries the URL with ``access_token=``), forged
callbacks and an order webhook with a bad signature. Every formatted line is then searched for every
configured secret and every token the fake platform issued.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from sqlalchemy import select, text

from bot.clock import FrozenClock
from bot.config import DatabaseConfig, DatabaseURL, Settings, build_settings, secret_values
from bot.db.engine import make_engine
from bot.db.models import OutboxCall
from bot.logs import RedactSecrets, configure_logging, remember_secret
from handlers.orders.webhook import sign
from tests.support.apps import ClientFactory, RunningBot, start_bot
from tests.support.settings import make_settings
from tests.support.wire import contact_event, mp_event, mp_request, wecom_request

ORDERS_SECRET = "whsec_" + base64.b64encode(b"orders-key-for-the-log-test-0123").decode()
SESSION_SECRET = "session-secret-" + "S" * 24
DB_PASSWORD = "Db-Pa55word-in-url"
CUSTOMER = "wmLogTestCustomer0001"  # an external_userid: it may only travel in (hidden) SQL parameters
NOISY = ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "aiosqlite", "asyncpg", "aiohttp", "asyncio")


class TokenServer:
    """A platform stand-in on a raw socket: ``gettoken`` answers a fresh token, every other API answers
    bytes that are not HTTP, so aiohttp raises an error whose text holds the full URL (token included)."""

    def __init__(self) -> None:
        self.issued: list[str] = []
        self._server: asyncio.Server | None = None
        self.base_url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"/cgi-bin/gettoken" in head.split(b"\r\n", 1)[0]:
                token = "LiveTok" + secrets.token_hex(16)
                self.issued.append(token)
                body = json.dumps({"errcode": 0, "access_token": token, "expires_in": 7200}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            else:
                writer.write(b"this is not HTTP\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def token_server() -> AsyncIterator[TokenServer]:
    server = TokenServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def capture_logs() -> Iterator[Callable[[Settings], io.StringIO]]:
    """``capture(settings)``: the production log set-up at DEBUG everywhere, into a buffer; undone after.

    configure_logging replaces the root handlers; pytest's own are put back behind ours (so they only
    ever see scrubbed records, and pytest removes them itself as usual)."""
    root = logging.getLogger()
    level = root.level
    levels = {name: logging.getLogger(name).level for name in (*NOISY, "aiohttp.access")}
    ours: list[logging.Handler] = []

    def capture(settings: Settings) -> io.StringIO:
        buf = io.StringIO()
        before = list(root.handlers)
        configure_logging("DEBUG", "json", secret_values(settings), stream=buf)
        ours.extend(root.handlers)
        for handler in before:
            root.addHandler(handler)
        for name in (*NOISY, "aiohttp.access"):  # configure_logging quiets the access log: open it up
            logging.getLogger(name).setLevel(logging.DEBUG)
        return buf

    yield capture
    for handler in ours:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def with_password(url: str) -> tuple[str, str | None]:
    """The test database URL with a password in it, and that password (a local server trusting local
    connections ignores it; a URL that already has one keeps its own)."""
    if url.startswith("sqlite"):
        return url, None
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    user = parts.username or "postgres"
    netloc = f"{user}:{DB_PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc)), DB_PASSWORD


def assert_clean(lines: str, forbidden: list[str]) -> None:
    for value in forbidden:
        assert value not in lines, f"{value[:6]}… appears in the log"
    dump = re.search(r"\[parameters: (?!hidden\]).{0,60}", lines)
    assert dump is None, f"a SQL parameter dump: {dump.group(0) if dump else ''}"


_REFUSE_TOKEN = {
    "sqlite": [
        "CREATE TRIGGER refuse_token_insert BEFORE INSERT ON access_tokens WHEN NEW.token <> '' "
        "BEGIN SELECT RAISE(ABORT, 'token store is broken'); END",
        "CREATE TRIGGER refuse_token_update BEFORE UPDATE ON access_tokens WHEN NEW.token <> '' "
        "BEGIN SELECT RAISE(ABORT, 'token store is broken'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION refuse_token() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'token store is broken'; END $$",
        "CREATE TRIGGER refuse_token BEFORE INSERT OR UPDATE ON access_tokens FOR EACH ROW "
        "WHEN (NEW.token <> '') EXECUTE FUNCTION refuse_token()",
    ],
}
_ACCEPT_TOKEN = {
    "sqlite": ["DROP TRIGGER refuse_token_insert", "DROP TRIGGER refuse_token_update"],
    "postgresql": ["DROP TRIGGER IF EXISTS refuse_token ON access_tokens", "DROP FUNCTION IF EXISTS refuse_token()"],
}


async def run_sql(bot: RunningBot, statements: list[str]) -> None:
    async with bot.services.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def outbox_call(bot: RunningBot, clock: FrozenClock, key: str) -> OutboxCall:
    """Queue one WeCom call for CUSTOMER, let the outbox worker run it, return the row afterwards."""
    assert bot.services.sessions is not None and bot.services.outbox is not None
    now = clock.now()
    async with bot.services.sessions() as s, s.begin():
        row = OutboxCall(
            idempotency_key=key,
            platform="wecom",
            api="externalcontact/get",
            payload={"_method": "GET", "_params": {"external_userid": CUSTOMER}},
            priority=100,
            created_at=now,
            next_attempt_at=now,
            deadline_at=now + timedelta(hours=1),
        )
        s.add(row)
    bot.services.outbox.notify([(row.id, 100)])
    await bot.services.outbox.settle()
    async with bot.services.sessions() as s:
        stored = await s.scalar(select(OutboxCall).where(OutboxCall.id == row.id))
    assert stored is not None
    return stored


async def test_fault_scenarios_leave_no_secret_in_any_log_line(
    aiohttp_client: ClientFactory,
    db_url: str,
    clock: FrozenClock,
    token_server: TokenServer,
    capture_logs: Callable[[Settings], io.StringIO],
) -> None:
    url, password = with_password(db_url)
    settings = make_settings(
        url,
        server={"session_secret": SESSION_SECRET},
        webhooks={"orders_secret": ORDERS_SECRET},
        wecom={"api_base_url": token_server.base_url},
        outbox={"max_attempts": 1},  # a transport failure is final at once, and logged as a warning
    )
    buf = capture_logs(settings)
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    dialect = "sqlite" if db_url.startswith("sqlite") else "postgresql"

    # 1. The token store refuses the fetched token: the INSERT … ON CONFLICT UPDATE fails with the token
    #    among its parameters, and the outbox logs the exception.
    await run_sql(bot, _REFUSE_TOKEN[dialect])
    try:
        first = await outbox_call(bot, clock, "log-test-1")
    finally:
        await run_sql(bot, _ACCEPT_TOKEN[dialect])
    assert first.state != "sent"  # the worker failed before sending
    assert len(token_server.issued) == 1

    # 2. The token is stored, then the API call fails in transport; aiohttp's text names the URL.
    second = await outbox_call(bot, clock, "log-test-2")
    assert second.state != "sent" and second.last_error is not None
    assert "TransportError" in second.last_error and "access_token" not in second.last_error
    assert len(token_server.issued) == 2
    async with aiohttp.ClientSession() as http:  # the fault is real: aiohttp's own text has the token
        with pytest.raises(aiohttp.ClientResponseError) as raw:
            await http.get(f"{token_server.base_url}/cgi-bin/x", params={"access_token": token_server.issued[1]})
    assert token_server.issued[1] in str(raw.value)

    # 3. Forged callbacks: a wrong signature on each platform.
    params, body = wecom_request(contact_event("add_external_contact", CUSTOMER, 1700000000))
    resp = await bot.client.post("/callback/wecom", params={**params, "msg_signature": "0" * 40}, data=body)
    assert resp.status == 403
    params, body = mp_request(mp_event("subscribe", "oForged", 1700000000))
    forged = {**params, "signature": "f" * 40, "msg_signature": "f" * 40}
    resp = await bot.client.post("/callback/mp", params=forged, data=body)
    assert resp.status == 403

    # 4. An order webhook signed with the wrong key.
    payload = json.dumps({"type": "order.paid", "data": {"order_id": "SO-1"}}).encode()
    ts = str(int(clock.now().timestamp()))
    headers = {
        "webhook-id": "msg_forged",
        "webhook-timestamp": ts,
        "webhook-signature": sign(b"not-the-key-" + bytes(20), "msg_forged", ts, payload),
        "content-type": "application/json",
    }
    resp = await bot.client.post("/webhooks/orders", data=payload, headers=headers)
    assert resp.status == 401
    await bot.client.close()

    lines = buf.getvalue()
    # Nothing logged shows a secret, a token, the customer's id or a parameter dump.
    forbidden = [*secret_values(settings), *token_server.issued, CUSTOMER, SESSION_SECRET, ORDERS_SECRET[6:]]
    if password is not None:
        forbidden.append(password)
    assert_clean(lines, forbidden)
    # The scenarios did log what they should (otherwise a clean log would prove nothing).
    assert "token store is broken" in lines  # the failed write was logged, with its traceback
    assert "[SQL parameters hidden due to hide_parameters=True]" in lines
    assert "Row [hidden]" in lines and "TransportError" in lines and '"logger": "aiohttp.access"' in lines
    for line in lines.splitlines():
        json.loads(line)  # one JSON object per line: a secret cannot hide in a broken line


async def test_echo_logs_statements_but_hides_parameters(
    db_url: str, capture_logs: Callable[[Settings], io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    """``database.echo = true``: SQLAlchemy prints statements (to stdout, and to the log) without values."""
    settings = make_settings(db_url)
    buf = capture_logs(settings)
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    before = list(engine_logger.handlers)
    value = "EchoSecret" + secrets.token_hex(8)
    engine = make_engine(DatabaseConfig(url=DatabaseURL(db_url), echo=True))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT :v AS v"), {"v": value})
    finally:
        await engine.dispose()
        for handler in engine_logger.handlers:
            if handler not in before:
                engine_logger.removeHandler(handler)  # echo's own stdout handler outlives the engine
    out = capsys.readouterr().out + buf.getvalue()
    assert "SELECT" in out and "[SQL parameters hidden due to hide_parameters=True]" in out
    assert value not in out


def test_every_configured_secret_is_masked() -> None:
    """secret_values covers every section: a value set anywhere is scrubbed from any text."""
    settings = build_settings(
        {
            "server": {"session_secret": SESSION_SECRET},
            "database": {"url": "postgresql+asyncpg://u:p%40ss-word@db/siyu"},
            "redis": {"url": "redis://:redis-pass-123@cache:6379/0"},
            "webhooks": {"orders_secret": ORDERS_SECRET},
            "wecom": {
                "corp_id": "ww1",
                "token": "WecomToken123",
                "encoding_aes_key": "A" * 43,
                "secret": "corp-secret-1",
            },
            "official_account": {
                "app_id": "wx1",
                "token": "MpToken456",
                "encoding_aes_key": "B" * 43,
                "app_secret": "app-secret-2",
            },
        },
        env={},
    )
    values = [
        SESSION_SECRET,
        "p%40ss-word",
        "p@ss-word",
        "redis-pass-123",
        ORDERS_SECRET,
        ORDERS_SECRET[6:],
        "WecomToken123",
        "A" * 43,
        "corp-secret-1",
        "MpToken456",
        "B" * 43,
        "app-secret-2",
    ]
    assert set(values) <= set(secret_values(settings))
    flt = RedactSecrets(secret_values(settings))
    for value in values:
        assert value not in flt.scrub(f"x {value} y")


def test_live_values_and_driver_texts_are_masked() -> None:
    flt = RedactSecrets([])
    live = "LiveTok" + secrets.token_hex(8)
    assert live in flt.scrub(live)  # not known yet
    remember_secret(live)
    assert flt.scrub(f"token {live}!") == "token ***!"
    for n in range(300):  # a few weeks of token rotation: only the newest tokens are kept ...
        remember_secret(f"RotatingToken{n:04d}", rotates=True)
    assert flt.scrub("RotatingToken0299") == "***" and flt.scrub("RotatingToken0000") == "RotatingToken0000"
    assert flt.scrub(f"token {live}!") == "token ***!"  # ... but a fixed value (a robot key) stays masked
    detail = "DETAIL:  Key (external_userid)=(wmABC) already exists."
    assert flt.scrub(detail) == "DETAIL:  Key (external_userid)=(***) already exists."
    dump = "[SQL: UPDATE t SET a=?]\n[parameters: ('tok', 'wmABC')]\n(Background on this error …)"
    assert "wmABC" not in flt.scrub(dump) and "[parameters: hidden]" in flt.scrub(dump)


def _record(name: str, level: int, msg: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_result_rows_and_driver_call_dumps_are_not_logged() -> None:
    flt = RedactSecrets([])
    row = _record("sqlalchemy.engine.Engine", logging.DEBUG, "Row %r", ("wmABC", "tok"))
    assert flt.filter(row) and row.getMessage() == "Row [hidden]"
    params = _record("sqlalchemy.engine.Engine", logging.INFO, "[%s] %r", "generated in 0.001s", ("wmABC", "tok"))
    assert flt.filter(params) and params.getMessage() == "[generated in 0.001s] [SQL parameters hidden]"
    call = _record("aiosqlite", logging.DEBUG, "executing %s", "partial(execute, 'SQL', ('wmABC',))")
    assert not flt.filter(call)
    problem = _record("aiosqlite", logging.WARNING, "exception occurred while closing connection")
    assert flt.filter(problem)
