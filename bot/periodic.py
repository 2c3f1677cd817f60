"""Periodic business jobs (referral release, …): each run is one ``run_action`` transaction.

Handlers declare their jobs (``handlers.all_jobs()``); this module only runs them on an interval and
keeps the tasks tracked. The jobs are idempotent and safe on several replicas (their own conditional
writes decide), so every replica may run them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.actions import run_action
from bot.background import Background
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
        self._background = Background("jobs")

    async def run_once(self, job: Job) -> Any:
        stamp = self._services.clock.now().strftime("%Y%m%dT%H%M%S")
        return await run_action(self._services, job.run, scope=f"job:{job.name}:{stamp}")

    def start(self) -> None:
        for job in self._jobs:
            self._background.every(job.name, job.every_seconds, lambda j=job: self.run_once(j))  # type: ignore[misc]

    async def stop(self) -> None:
        await self._background.stop()

    async def cleanup_ctx(self) -> AsyncIterator[None]:
        self.start()
        yield
        await self.stop()
