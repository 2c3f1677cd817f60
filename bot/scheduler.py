"""The one APScheduler seam: an ``AsyncIOScheduler`` with an explicit timezone, rebuilt from content.

Modelled on python-telegram-bot's ``JobQueue``: a thin wrapper, jobs added by the application at
start-up, no job store (docs/operations.md, "Scheduling": the database is the truth). Two kinds of jobs:

* one cron/calendar job per group post — its callback works out *which* fire is due from the injected
  clock (:func:`due_fires`) and calls ``fire(post_id, fire_at)``;
* ``every(name, seconds, fn)`` — frequent polls (catch-up of fires, follow-up checks, due work).

APScheduler times jobs on the wall clock, which tests freeze and the demo speeds up, so all decisions
are made from the injected clock and :func:`due_fires` is pure: tests call it (and ``fire``) directly.
``fire`` must be idempotent (fires are rows unique on post, fire time and target), so a late job, a
catch-up and another replica firing the same post all lead to one send.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.background import Background
from bot.clock import Clock
from bot.content.schedule import CronSchedule, DatesSchedule, cron_trigger
from bot.sim_clock import real_seconds

log = logging.getLogger(__name__)

FireFn = Callable[[str, datetime], Awaitable[object]]
TickFn = Callable[[], Awaitable[object]]
_ONE_SECOND = timedelta(seconds=1)
_POST_JOB = "post:"
EVERY_FLOOR = 0.1  # a sped-up ``every`` job runs at most ten times a second (real time)


class Timed(Protocol):
    """Something that fires on a calendar (a group post): a cron or a list of dates; other schedules
    (relative to a group's creation) have no calendar and are skipped."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def schedule(self) -> object: ...


def due_fires(posts: Iterable[Timed], since: datetime, until: datetime, tz: tzinfo) -> list[tuple[str, datetime]]:
    """Fires of enabled cron/calendar posts in ``(since, until]``, sorted by time then post id.

    Relative posts ("day 1 after the group was created") have no calendar of their own and are skipped.
    Times come back timezone-aware; local times are read in ``tz`` (the configured timezone).
    """
    out: list[tuple[str, datetime]] = []
    for post in posts:
        if not post.enabled or not isinstance(post.schedule, CronSchedule | DatesSchedule):
            continue
        out += [(post.id, at) for at in post.schedule.fires(since + _ONE_SECOND, until + _ONE_SECOND, tz)]
    return sorted(out, key=lambda pair: (pair[1], pair[0]))


class Scheduler:
    """Owns the ``AsyncIOScheduler`` and the tasks its jobs start; ``stop`` waits for them."""

    def __init__(self, tz: tzinfo, clock: Clock, *, misfire_grace: timedelta = timedelta(minutes=30)) -> None:
        self.tz = tz
        self._clock = clock
        self._grace = misfire_grace
        self._aps = AsyncIOScheduler(timezone=tz)
        self._background = Background("scheduler")

    def schedule_posts(self, posts: Iterable[Timed], fire: FireFn, *, grace: timedelta | None = None) -> int:
        """(Re)build one job per enabled cron/calendar post. Returns how many jobs were added.

        ``grace``: how late a fire may still go out (the feature's setting; default the constructor's)."""
        if grace is not None:
            self._grace = grace
        for job in self._aps.get_jobs():
            if job.id.startswith(_POST_JOB):
                job.remove()
        added = 0
        for post in posts:
            for job_id, trigger in self._triggers(post):
                self._aps.add_job(
                    self._spawn,
                    trigger,
                    args=(f"fire {post.id}", self._post_due, post, fire),
                    id=job_id,
                    name=post.name or post.id,
                    misfire_grace_time=int(self._grace.total_seconds()),
                    coalesce=True,
                    max_instances=1,
                )
                added += 1
        return added

    def every(self, name: str, seconds: float, fn: TickFn) -> None:
        """Run ``fn`` every ``seconds`` of the clock (wall-clock seconds on a sped-up clock:
        :func:`bot.sim_clock.real_seconds`), never two at once, first run right after start."""
        trigger = IntervalTrigger(seconds=real_seconds(self._clock, seconds, EVERY_FLOOR), timezone=self.tz)
        self._aps.add_job(
            self._spawn,
            trigger,
            args=(name, fn),
            id=f"every:{name}",
            name=name,
            coalesce=True,
            max_instances=1,
            replace_existing=True,
            next_run_time=datetime.now(self.tz),
        )

    @property
    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._aps.get_jobs())

    def start(self) -> None:
        self._aps.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """No new runs, then wait for running ones (cancelled after ``timeout``)."""
        if self._aps.running:
            self._aps.shutdown(wait=False)
        await self._background.drain(timeout)

    def _triggers(self, post: Timed) -> list[tuple[str, Any]]:
        if not post.enabled:
            return []
        if isinstance(post.schedule, CronSchedule):
            return [(f"{_POST_JOB}{post.id}", cron_trigger(post.schedule.cron, self.tz))]
        if isinstance(post.schedule, DatesSchedule):
            now = self._clock.now()
            local = [d.replace(tzinfo=self.tz) for d in post.schedule.dates]
            return [
                (f"{_POST_JOB}{post.id}:{i}", DateTrigger(run_date=at, timezone=self.tz))
                for i, at in enumerate(local)
                if at > now - self._grace
            ]
        return []

    async def _post_due(self, post: Timed, fire: FireFn) -> None:
        """A post's job ran: fire its latest fire time that is due by the injected clock."""
        now = self._clock.now()
        due = due_fires([post], now - self._grace, now, self.tz)
        if due:
            await fire(*due[-1])

    async def _spawn(self, name: str, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """APScheduler runs coroutine jobs on the loop (a plain function would go to a thread); the work
        itself runs as a tracked task so ``stop`` can drain it."""
        self._background.spawn(self._guarded(name, fn, *args), name)

    async def _guarded(self, name: str, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        try:
            await fn(*args)
        except Exception:
            log.exception("scheduled job failed", extra={"job": name})
