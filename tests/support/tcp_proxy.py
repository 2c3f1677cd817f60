"""A TCP proxy for fault tests: put it between the bot and PostgreSQL / Redis / anything, then break it.

The proxy runs its own event loop in a background thread, so it keeps forwarding while the test's
loop is busy, and the same object works from async tests, sync tests and tests that drive server
processes. Every method is thread-safe and returns once the proxy is in the new state.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.rewrite("postgresql+asyncpg://postgres@127.0.0.1:5432/test")  # host:port → proxy
        ...                  # the code under test connects to proxy.port
        proxy.cut()          # hang: connections stay open, nothing is forwarded either way
        proxy.restore()      # forwarding resumes (held bytes are delivered, like a healed partition)
        proxy.drop()         # crash: every connection is reset, new ones are refused
        proxy.restore()      # listening again on the same port

States
    ``forwarding`` (after start and ``restore()``): bytes flow both ways; each accepted connection
    opens its own connection to the target.

    ``cut``: the network black-holes. Open connections stay open but no byte moves in either direction
    (bytes already read are held, not lost). New connections are still accepted (the TCP handshake
    succeeds, as with a stalled proxy or a server that stopped answering) but are not connected to the
    target until ``restore()``. A client without its own timeout waits forever.

    ``dropped``: every client and target connection is aborted (the peer sees a reset / EOF) and the
    listening socket is closed, so new connections are refused (ECONNREFUSED), as when the server
    process died. ``restore()`` listens again on the same port.

``connections`` is the number of client connections currently open through the proxy. ``close()`` (or
leaving the ``with`` block) aborts everything and stops the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

_CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """A proxy to ``target_host:target_port`` listening on ``host:port`` (``port=0``: a free port,
        chosen once and kept across ``drop()``/``restore()``). Call :meth:`start` or use ``with``."""
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port
        self.state = "stopped"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._links: set[_Link] = set()

    # --- life cycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the thread and listen; returns self (``proxy.port`` is then the real port)."""
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        """Abort every connection, stop listening and stop the thread (idempotent)."""
        if self._loop is None or self._thread is None:
            return
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = self._thread = None
        self.state = "stopped"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- faults -----------------------------------------------------------------------------------

    def cut(self) -> None:
        """Hang: keep every connection open (and accept new ones) but forward nothing, either way."""
        self._call(self._cut())

    def drop(self) -> None:
        """Crash: reset every open connection and refuse new ones until :meth:`restore`."""
        self._call(self._drop())

    def restore(self) -> None:
        """Forward again: held bytes are delivered; after a ``drop()`` the port listens again."""
        self._call(self._restore())

    # --- helpers ----------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def connections(self) -> int:
        return len(self._links)

    def rewrite(self, url: str) -> str:
        """``url`` with its host:port replaced by the proxy's (user, password, path and query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{userinfo}{self.host}:{self.port}"))

    # --- inside the proxy's loop ------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("proxy not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()
        self.state = "forwarding"

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        sock: socket.socket = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])

    async def _cut(self) -> None:
        assert self._flowing is not None
        if self.state == "dropped":
            await self._listen()  # a cut after a drop: connections are accepted again, but hang
        self._flowing.clear()
        self.state = "cut"

    async def _drop(self) -> None:
        assert self._flowing is not None
        self._flowing.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        links = list(self._links)
        for link in links:
            link.abort()
        for link in links:
            await link.finished()  # so ``connections`` is 0 when drop() returns
        if server is not None:
            await server.wait_closed()
        self.state = "dropped"

    async def _restore(self) -> None:
        assert self._flowing is not None
        if self._server is None:
            await self._listen()
        self._flowing.set()
        self.state = "forwarding"

    async def _shut(self) -> None:
        await self._drop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        task = asyncio.current_task()
        assert task is not None
        link = _Link(writer, task)
        self._links.add(link)
        try:
            await self._flowing.wait()  # a connection accepted while cut is connected on restore
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            link.upstream = up_writer
            await asyncio.gather(self._pump(reader, up_writer, link), self._pump(up_reader, writer, link))
        except (asyncio.CancelledError, OSError):
            pass  # aborted by drop()/close() or by the other direction; or the target refused us
        finally:
            link.abort()
            self._links.discard(link)
            link.done.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        assert self._flowing is not None
        try:
            while not link.aborted:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()  # while cut, what was read is held here
                if link.aborted:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        link.abort()  # one side closed or failed: close both, as a proxy does


class _Link:
    """One client connection, its connection to the target and the task forwarding between them."""

    def __init__(self, client: asyncio.StreamWriter, task: asyncio.Task[Any]) -> None:
        self.client = client
        self.task = task
        self.upstream: asyncio.StreamWriter | None = None
        self.aborted = False
        self.done = asyncio.Event()

    def abort(self) -> None:
        """Reset both connections and stop forwarding (idempotent)."""
        if self.aborted:
            return
        self.aborted = True
        for writer in (self.client, self.upstream):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        if self.task is not asyncio.current_task():
            self.task.cancel()

    async def finished(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self.done.wait()
