"""Group commit for handler runs: many waiting tasks, a few of them running everyone's work in batches.

Every receipt's handlers run in a task of their own (the dispatcher's, one per receipt). Instead of one
transaction each, a task hands its job to a :class:`BatchQueue` and waits. At most ``width`` of the waiting
tasks at a time become *runners*: a runner takes the jobs queued so far (up to ``max_items``) and runs them
with ``run``, which returns how many it finished (a job's failure is that job's, never raised). It may
stop early (a time budget); the rest go back to the front of the queue, in order. A runner keeps going
until the queue is empty, so under a burst the batches grow by themselves (everything that arrived while
the previous batch ran), and with one job at a time a batch is that one job: nothing waits for a batch to
fill.

A runner that is cancelled (shutdown) puts the jobs it had not finished back and hands over to another
waiting task; a waiting task that is cancelled takes its job off the queue if no runner has it yet.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar


class Job:
    """One unit of work; ``run`` finishes it with :meth:`finish` or :meth:`fail`."""

    __slots__ = ("_done", "queued")

    def __init__(self) -> None:
        self._done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.queued = False  # in the queue (not in a runner's hands)

    @property
    def finished(self) -> bool:
        return self._done.done()

    def finish(self, outcome: str) -> None:
        if not self._done.done():
            self._done.set_result(outcome)

    def fail(self, exc: BaseException) -> None:
        if not self._done.done():
            self._done.set_exception(exc)


J = TypeVar("J", bound=Job)


class BatchQueue(Generic[J]):
    def __init__(self, width: int, max_items: int, run: Callable[[list[J]], Awaitable[int]]) -> None:
        self._width = max(1, width)
        self._max = max(1, max_items)
        self._run = run
        self._queue: deque[J] = deque()
        self._runners = 0
        self._freed: list[asyncio.Future[None]] = []  # waiting tasks to tell when a runner's place frees

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def through(self, job: J) -> str:
        """Queue ``job``, take a runner's place when one is free, and return the job's outcome (or raise its
        failure)."""
        self._put(job)
        try:
            while not job.finished:
                if job.queued and self._runners < self._width:
                    await self._serve()
                    continue
                freed = asyncio.get_running_loop().create_future()
                self._freed.append(freed)
                try:
                    await asyncio.wait((job._done, freed), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if freed in self._freed:
                        self._freed.remove(freed)
        except asyncio.CancelledError:
            if job.queued:  # no runner has it: it never ran
                self._queue.remove(job)
                job.queued = False
            raise
        return await job._done

    def _put(self, job: J, *, first: bool = False) -> None:
        job.queued = True
        if first:
            self._queue.appendleft(job)
        else:
            self._queue.append(job)

    def _take(self) -> list[J]:
        batch = [self._queue.popleft() for _ in range(min(self._max, len(self._queue)))]
        for job in batch:
            job.queued = False
        return batch

    async def _serve(self) -> None:
        """Run batches until the queue is empty, as one of the ``width`` runners."""
        self._runners += 1
        batch: list[J] = []
        try:
            while self._queue:
                batch = self._take()
                try:
                    ran = await self._run(batch)
                except Exception as exc:  # ``run`` settles its jobs' failures itself; this is a bug there
                    for job in batch:
                        job.fail(exc)
                    ran = len(batch)
                for job in reversed(batch[max(ran, 0) :]):  # not reached this time: first in line again
                    if not job.finished:
                        self._put(job, first=True)
                batch = []
        finally:
            for job in reversed(batch):  # cancelled mid-batch: nothing of it committed
                if not job.finished:
                    self._put(job, first=True)
            self._runners -= 1
            for freed in self._freed:
                if not freed.done():
                    freed.set_result(None)
