"""One SQLite writer at a time, handed over in-process instead of through SQLite's busy sleeps.

SQLite has a single write lock per database file. Two connections that want it at once do not queue: the
loser sleeps and polls (1, 2, 5 … 100 ms) until it gets it. Under load the inbox writer — whose commit
every WeChat callback waits for — lost that race to the handler transactions again and again, and acks
took seconds. In one process the race is avoidable: every use of the database goes through a
:class:`WriteGate`, an asyncio lock whose waiters are woken the moment it is released, and the inbox
writer waits as *urgent*, ahead of every other waiter. SQLite's busy timeout stays as the last resort for
other processes (the command line).

Work with a deadline of seconds that goes through the engine — claiming and finishing a welcome in the outbox
(bot/outbox.py) — runs inside :func:`urgent_writes`: the pool then takes the gate as urgent too, so it waits
for the transaction in progress but never behind the queue of handler transactions.

The app's SQLAlchemy engine on SQLite gets a :class:`GatedPool` (one connection; checking it out takes the
gate, checking it in releases it), so no call site has to remember the gate. PostgreSQL has row locks and
needs none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import await_

# SQLAlchemy names a pool's logger after its class; ours lives under ``bot``, whose INFO level would print
# "Pool disposed" / "Pool recreating" at the end of every command.
logging.getLogger(f"{__name__}.GatedPool").setLevel(logging.WARNING)


class WriteGate:
    """An asyncio lock with two waiter queues: urgent waiters (the inbox writer) are served first."""

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @property
    def held(self) -> bool:
        return self._held

    @property
    def waiting(self) -> int:
        return len(self._urgent) + len(self._normal)

    async def acquire(self, *, urgent: bool = False) -> None:
        if not self._held and not self._urgent and not self._normal:
            self._held = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # it was handed to us just as we were cancelled: pass it on
            else:
                queue.remove(fut)
            raise

    def release(self) -> None:
        """Hand the gate to the next waiter (urgent first), or free it."""
        for queue in (self._urgent, self._normal):
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # ownership passes directly: ``_held`` stays True
                    return
        self._held = False


# Set by :func:`urgent_writes`; read by :meth:`GatedPool._do_get`, which SQLAlchemy runs in a greenlet that
# shares the calling task's context.
_URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("siyu_urgent_writes", default=False)


@contextlib.contextmanager
def urgent_writes() -> Iterator[None]:
    """Connections checked out of a :class:`GatedPool` inside this block take the gate as urgent."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


class GatedPool(AsyncAdaptedQueuePool):
    """One SQLite connection; holding it means holding the gate (``engine.pool.gate``)."""

    def __init__(self, creator: Any, *, gate: WriteGate | None = None, **kw: Any) -> None:
        kw.update(pool_size=1, max_overflow=0)
        super().__init__(creator, **kw)
        self.gate = gate or WriteGate()

    def recreate(self) -> GatedPool:
        new = super().recreate()
        assert isinstance(new, GatedPool)
        new.gate = self.gate
        return new

    def _do_get(self) -> ConnectionPoolEntry:
        await_(self.gate.acquire(urgent=_URGENT.get()))
        try:
            return super()._do_get()
        except BaseException:
            self.gate.release()
            raise

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            self.gate.release()


def gate_of(engine: Any) -> WriteGate | None:
    """The engine's gate (SQLite app engines), or None."""
    pool = getattr(getattr(engine, "sync_engine", engine), "pool", None)
    return pool.gate if isinstance(pool, GatedPool) else None


def reraise_if_cancelling() -> None:
    """In a background loop's ``except Exception``: stop if this task was cancelled meanwhile.

    A cancellation that arrives inside a database call can come out of the driver as an ordinary error (the
    operation was cut off); a loop that logs it and sleeps on would then ignore its cancel — and the
    shutdown that waits for it hangs for as long as that sleep."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
