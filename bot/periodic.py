"""Periodic business jobs (referral release, …): each run is one ``run_action`` transaction.

Handlers declare their jobs (``handlers.all_jobs()``); this module only runs them on an interval and
keeps the tasks tracked. The jobs are idempotent and safe on several replicas (their own conditional
writes decide), so every replica may run them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.actions import run_action
from bot.context import Context, Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every_seconds: float
    run: Callable[[Context], Awaitable[Any]]


class PeriodicJobs:
    def __init__(self, services: Runtime, jobs: list[Job]) -> None:
        self._services = services
        self._jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    async def run_once(self, job: Job) -> Any:
        stamp = self._services.clock.now().strftime("%Y%m%dT%H%M%S")
        return await run_action(self._services, job.run, scope=f"job:{job.name}:{stamp}")

    async def _loop(self, job: Job) -> None:
        while True:
            await asyncio.sleep(job.every_seconds)
            try:
                await self.run_once(job)
            except Exception:
                log.exception("periodic job %s failed", job.name)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(j), name=f"job-{j.name}") for j in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def cleanup_ctx(self) -> AsyncIterator[None]:
        self.start()
        yield
        await self.stop()
