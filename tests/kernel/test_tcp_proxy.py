"""The fault-injection proxy itself (tests/support/tcp_proxy.py) against a local echo server: what each state does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo_port) as p:
        yield p


async def connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*proxy.address)


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 2)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_forwards_both_ways(proxy: TcpProxy) -> None:
    reader, writer = await connect(proxy)
    assert await roundtrip(reader, writer, b"hello") == b"hello"
    assert proxy.connections == 1 and proxy.state == "forwarding"
    await close(writer)


async def test_cut_holds_bytes_and_restore_delivers_them(proxy: TcpProxy) -> None:
    reader, writer = await connect(proxy)
    assert await roundtrip(reader, writer, b"before") == b"before"
    proxy.cut()
    writer.write(b"held")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.3)
    late_reader, late_writer = await connect(proxy)  # still accepted while cut ...
    late_writer.write(b"late")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(late_reader.readexactly(4), 0.3)  # ... but not answered
    assert proxy.connections == 2
    proxy.restore()
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"held"
    assert await asyncio.wait_for(late_reader.readexactly(4), 2) == b"late"
    await close(writer)
    await close(late_writer)


async def test_drop_resets_connections_refuses_new_ones_and_restore_listens_again(proxy: TcpProxy) -> None:
    port = proxy.port
    reader, writer = await connect(proxy)
    assert await roundtrip(reader, writer, b"x") == b"x"
    proxy.drop()
    try:
        ended = await asyncio.wait_for(reader.read(10), 2)
    except ConnectionError:
        ended = b""  # a reset rather than an end of stream: the same to the client
    assert ended == b""
    await close(writer)
    with pytest.raises(OSError):
        await connect(proxy)
    assert proxy.connections == 0
    proxy.restore()
    assert proxy.port == port
    reader, writer = await connect(proxy)
    assert await roundtrip(reader, writer, b"again") == b"again"
    await close(writer)


def test_rewrite_keeps_credentials_path_and_query() -> None:
    proxy = TcpProxy("db", 5432, port=6543)
    url = "postgresql+asyncpg://user:pw@db:5432/name?ssl=disable"
    assert proxy.rewrite(url) == "postgresql+asyncpg://user:pw@127.0.0.1:6543/name?ssl=disable"
    assert proxy.rewrite("redis://cache:6379/13") == "redis://127.0.0.1:6543/13"
