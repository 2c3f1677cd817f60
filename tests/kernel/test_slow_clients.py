"""Slow and piling-up clients against the real server (``siyu-bot serve``'s listener) over real sockets.

Each test starts the app with :func:`bot.serving.start_guarded` on a free port and talks raw HTTP/1.1
to it: a client that stalls or trickles is cut off, connections beyond the cap do not lock WeChat out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import SERVICES
from bot.clock import FrozenClock
from bot.db.models import Receipt
from bot.serving import ConnectionGuard, start_guarded
from tests.support.apps import build
from tests.support.settings import SHIPPED_CONTENT, WECOM_AES, WECOM_CORP, WECOM_TOKEN, make_settings
from tests.support.wire import contact_event, wecom_request

CLOSED_WITHIN = 5.0  # generous bound for "the server closed it" when the configured deadline is 0.5 s


@dataclass
class Server:
    app: Any
    port: int
    guard: ConnectionGuard
    clients: list[asyncio.StreamWriter] = field(default_factory=list)

    async def receipts(self) -> int:
        sessions = self.app[SERVICES].sessions
        async with sessions() as s:
            return int((await s.execute(select(func.count()).select_from(Receipt))).scalar_one())

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.clients.append(writer)
        return reader, writer

    async def close_clients(self) -> None:
        for writer in self.clients:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def callback(self, external_userid: str) -> int:
        params, body = wecom_request(contact_event("add_external_contact", external_userid, 1700000000))
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{self.port}/callback/wecom", params=params, data=body) as resp,
        ):
            return resp.status


@pytest.fixture
async def server(request: pytest.FixtureRequest, sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Server]:
    overrides: dict[str, Any] = {"header_timeout_seconds": 0.5, "body_timeout_seconds": 0.5, "max_connections": 50}
    param = dict(getattr(request, "param", {}))
    webhooks = param.pop("webhooks", {})
    overrides.update(param)
    settings = make_settings(sqlite_url, server=overrides, webhooks=webhooks)
    app = build(settings, clock, routers=[])
    metrics = app[SERVICES].metrics
    runner, site, guard = await start_guarded(app, settings.server, "127.0.0.1", 0, metrics=metrics, access_log=None)
    running = Server(app, site.port, guard)
    try:
        yield running
    finally:
        await running.close_clients()
        await runner.cleanup()


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(int(CLOSED_WITHIN * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (fails if it is still open after the bound)."""
    return await asyncio.wait_for(reader.read(), CLOSED_WITHIN)


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """What the server answered before it closed the connection, also when it reset it: a client that
    goes on sending after its answer is reset (the unread rest of its body is discarded)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def _still_open(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), 0.2)
    except TimeoutError:
        return True
    return False


def _headers(path: str, content_length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Type: text/xml\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


async def test_a_client_that_stalls_in_its_headers_is_disconnected(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(b"POST /callback/wecom?msg_signature=x HTTP/1.1\r\nHost: b")  # half a header line, then nothing
    assert await _closed_by_server(reader) == b""
    silent_reader, _ = await server.connect()  # connects and never sends a byte
    assert await _closed_by_server(silent_reader) == b""
    assert server.guard.open_connections == 0


async def test_trickled_header_bytes_do_not_extend_the_deadline(server: Server) -> None:
    """Slowloris: a byte every 100 ms keeps the connection busy, never idle; the deadline still holds."""
    reader, writer = await server.connect()
    closed = asyncio.create_task(_answer(reader))
    sent = 0
    with pytest.raises(ConnectionError):  # the server hangs up while we are still trickling
        for byte in b"POST /callback/wecom HTTP/1.1\r\nX-Slow: " + b"a" * 200:
            if closed.done():
                raise ConnectionResetError
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.02 if sent < 30 else 0.1)
    assert await closed == b""
    assert sent < 60  # cut off around the 0.5 s deadline, long before the 200-byte header was done


async def test_a_trickling_body_is_cut_off_with_408_and_nothing_is_stored(server: Server) -> None:
    params, body = wecom_request(contact_event("add_external_contact", "wmSLOW", 1700000000))
    reader, writer = await server.connect()
    writer.write(_headers(f"/callback/wecom?{urlencode(params)}", len(body)))
    response = asyncio.create_task(_answer(reader))
    for byte in body.encode()[:100]:  # one byte every 20 ms: the whole body would take seconds
        if response.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.02)
    answer = await asyncio.wait_for(response, CLOSED_WITHIN)  # answered, and the connection closed
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b"body not received in time")
    assert await server.receipts() == 0
    assert await server.callback("wmFAST") == 200  # the server is fine
    assert await server.receipts() == 1


ORDERS_SECRET = "whsec_" + "c2l5dS1vcmRlcnMtdGVzdC1rZXktMDEyMzQ1Njc4OSE="  # 32 bytes


@pytest.mark.parametrize("server", [{"webhooks": {"orders_secret": ORDERS_SECRET}}], indirect=True)
async def test_the_order_webhook_cuts_off_a_trickling_body_too(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(_headers("/webhooks/orders", 500) + b'{"type": "order.paid", ')
    answer = await _closed_by_server(reader)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b'{"status": "rejected", "reason": "body not received in time"}')


@pytest.mark.parametrize("server", [{"max_connections": 4, "header_timeout_seconds": 60.0}], indirect=True)
async def test_connections_beyond_the_cap_evict_the_oldest_idle_one_so_wechat_still_gets_through(
    server: Server,
) -> None:
    stalled = []
    for _ in range(4):  # the cap, filled with clients that never finish their headers
        reader, writer = await server.connect()
        writer.write(b"POST /callback/wecom HTTP/1.1\r\n")
        stalled.append(reader)
    await _until(lambda: server.guard.open_connections == 4)
    assert await server.callback("wmCAP") == 200  # a fifth connection: the oldest stalled one makes room
    assert await _closed_by_server(stalled[0]) == b""
    assert [await _still_open(r) for r in stalled[1:]] == [True, True, True]
    assert server.guard.open_connections <= 4
    assert server.app[SERVICES].metrics.value("siyu_connections_closed_total", reason="evicted") == 1
    assert await server.receipts() == 1


@pytest.mark.parametrize(
    "server", [{"max_connections": 2, "header_timeout_seconds": 60.0, "body_timeout_seconds": 60.0}], indirect=True
)
async def test_when_every_connection_is_busy_a_newcomer_is_refused_with_503(server: Server) -> None:
    params, body = wecom_request(contact_event("add_external_contact", "wmBUSY", 1700000000))
    busy = []
    for _ in range(2):  # requests being handled: their bodies are still arriving
        reader, writer = await server.connect()
        writer.write(_headers(f"/callback/wecom?{urlencode(params)}", len(body)) + body.encode()[:10])
        busy.append((reader, writer))
    await _until(lambda: server.guard.busy_connections == 2)
    reader, _ = await server.connect()
    assert (await _closed_by_server(reader)).startswith(b"HTTP/1.1 503 ")
    assert server.app[SERVICES].metrics.value("siyu_connections_closed_total", reason="refused") == 1
    for _, writer in busy:  # the busy requests finish normally: the refusal did not touch them
        writer.write(body.encode()[10:])
    answers = [await asyncio.wait_for(r.readuntil(b"\r\n"), CLOSED_WITHIN) for r, _ in busy]
    assert answers == [b"HTTP/1.1 200 OK\r\n"] * 2
    await server.close_clients()
    await asyncio.sleep(0.1)
    assert await server.callback("wmAFTER") == 200


def _spawn_serve(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m handlers serve`` (the real command line, ``siyu-bot serve``) on a free port, SQLite,
    0.5 s header deadline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = tmp_path / "config.toml"
    config.write_text(
        f'content_dir = "{SHIPPED_CONTENT}"\n'
        f"[server]\nport = {port}\nheader_timeout_seconds = 0.5\n"
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "siyu.db"}"\n'
        f'[wecom]\ncorp_id = "{WECOM_CORP}"\ntoken = "{WECOM_TOKEN}"\nencoding_aes_key = "{WECOM_AES}"\n'
        'api_base_url = "http://127.0.0.1:9/wecom"\n[logging]\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "handlers", "-c", str(config), "serve"], stderr=log)
    return proc, port


@pytest.mark.slow
async def test_siyu_bot_serve_guards_its_listener_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    """The real command: a stalled client is disconnected, a callback goes through, SIGTERM exits 0."""
    proc, port = _spawn_serve(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                assert proc.poll() is None, "server exited early"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHo")
            assert await _closed_by_server(reader) == b""
            writer.close()
            params, body = wecom_request(contact_event("add_external_contact", "wmSERVE", 1700000000))
            async with http.post(f"http://127.0.0.1:{port}/callback/wecom", params=params, data=body) as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
