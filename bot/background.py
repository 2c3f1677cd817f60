"""The one way siyu-bot runs work in the background: named tasks, tracked, failures logged, stopped in order.

Every component that works outside a request — the inbox writer and sweeper, the dispatcher's handler runs,
the outbox, the heartbeat, the drip poll, periodic jobs, scheduled posts, alert posts — owns one
:class:`Background`. ``spawn`` starts a tracked task (optionally under a key, e.g. a receipt id, so the
owner can ask what it is running); ``every`` runs a function in a loop with a wait between runs (a number,
or a function for simulated time) that a :meth:`Loop.wake` cuts short. ``drain`` waits for what runs and
cancels what is left at the deadline; ``stop`` cancels everything and waits for it to end. Nothing started
here outlives its owner, and no failure passes silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Loop:
    """A running ``every`` loop: :meth:`wake` runs it now instead of at the end of its wait."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()


class Background:
    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: dict[asyncio.Task[Any], Hashable | None] = {}
        self._keyed: dict[Hashable, asyncio.Task[Any]] = {}

    def spawn(self, coro: Coroutine[Any, Any, T], name: str, *, key: Hashable | None = None) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._owner}:{name}")
        self._tasks[task] = key
        if key is not None:
            self._keyed[key] = task
        task.add_done_callback(self._done)
        return task

    def every(
        self,
        name: str,
        seconds: float | Callable[[], float],
        fn: Callable[[], Awaitable[object]],
        *,
        first: float | Callable[[], float] | None = None,
    ) -> Loop:
        """Run ``fn`` after ``first`` (default: ``seconds``), then every ``seconds``; an exception is logged and
        the loop goes on."""
        loop = Loop()
        wait = seconds if callable(seconds) else (lambda: seconds)
        first_wait = wait if first is None else (first if callable(first) else (lambda: first))

        async def run() -> None:
            await loop.wait(first_wait())
            while True:
                try:
                    await fn()
                except Exception:
                    log.exception("%s failed", f"{self._owner}:{name}")
                await loop.wait(wait())

        self.spawn(run(), name)
        return loop

    def running_keys(self) -> set[Hashable]:
        """The keys of the keyed tasks running now."""
        return {k for k, t in self._keyed.items() if not t.done()}

    def __contains__(self, key: Hashable) -> bool:
        task = self._keyed.get(key)
        return task is not None and not task.done()

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Until nothing runs here (tasks started meanwhile included)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for what runs; cancel what is still running then, and wait for it to end."""
        running = [t for t in self._tasks if not t.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=timeout)
            await cancel_and_wait(late)

    async def stop(self) -> None:
        """Cancel everything now and wait for it to end."""
        await self.drain(0)

    def _done(self, task: asyncio.Task[Any]) -> None:
        key = self._tasks.pop(task, None)
        if key is not None and self._keyed.get(key) is task:
            del self._keyed[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s ended with an error", task.get_name(), exc_info=task.exception())


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, patience: float = 5.0) -> None:
    """Cancel ``tasks`` and wait until they have ended. A cancellation can be swallowed below us (a database
    driver interrupted mid-call has done it): a task still running is cancelled again every 50 ms, and one
    that outlives ``patience`` seconds is logged and left behind rather than hanging the shutdown."""
    pending = {t for t in tasks if not t.done()}
    deadline = asyncio.get_running_loop().time() + patience
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
        if pending and asyncio.get_running_loop().time() > deadline:
            log.error("tasks did not stop: %s", sorted(t.get_name() for t in pending))
            return
    await asyncio.gather(*tasks, return_exceptions=True)
