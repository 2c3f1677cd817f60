"""``/api/v1/import``: ``siyu-bot import`` started from the API, run in the background of the serving process.

One import at a time per process (a second ``POST`` while one runs: 409). ``GET`` shows the latest run:
its state, the importer's progress lines (the last few), its tally and, if it stopped on a platform error,
why. The import itself is :class:`handlers.growth.importer.Importer`, with the app's database, content,
clock and platform clients; it checkpoints as the command does, so a run cut off by a restart resumes on
the next ``POST`` (``resumable`` names the lists it will resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.parts import Part
from bot.platform import MpClient, PlatformError, WeComClient
from bot.services import Services
from handlers.api.http import Call, Problem, audit_entry, json_response
from handlers.growth.importer import Importer, Tally, unfinished

log = logging.getLogger(__name__)

PROGRESS_LINES = 10


class ProgressLines(io.StringIO):
    """The importer's output, keeping only its last :data:`PROGRESS_LINES` lines (bounded memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=PROGRESS_LINES)

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)


@dataclasses.dataclass
class ImportRun:
    id: int
    started_at: datetime
    out: ProgressLines
    importer: Importer
    state: str = "running"  # running | done | failed
    finished_at: datetime | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = None

    def body(self, resumable: list[str]) -> dict[str, Any]:
        tally: Tally = self.importer.tally
        return {
            "id": self.id,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": list(self.out.lines),
            "summary": {**dataclasses.asdict(tally), "changed": tally.changed},
            "error": self.error,
            "resumable": resumable,
        }


class ImportRuns:
    """The serving process's imports: the latest one, and whether one is running."""

    def __init__(self) -> None:
        self.latest: ImportRun | None = None
        self.count = 0

    @property
    def running(self) -> bool:
        return self.latest is not None and self.latest.state == "running"

    async def stop(self) -> None:
        task = self.latest.task if self.latest is not None else None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


IMPORTS = Part[ImportRuns]("api.imports")


async def import_runs(services: Services) -> AsyncIterator[None]:
    """The worker holding the imports; at shut-down a running one is cancelled (it resumes next time)."""
    runs = ImportRuns()
    services.parts[IMPORTS] = runs
    yield
    await runs.stop()
    services.parts.pop(IMPORTS)


async def _run(services: Services, run: ImportRun) -> None:
    try:
        await run.importer.run()
        run.state = "done"
    except PlatformError as exc:
        run.state, run.error = "failed", f"{exc}; start the import again to resume"
    except Exception as exc:
        log.exception("import %s failed", run.id)
        run.state, run.error = "failed", f"{type(exc).__name__}; the server log has why"
    finally:
        if run.state == "running":  # cancelled by a shut-down
            run.state, run.error = "failed", "the server stopped; start the import again to resume"
        run.finished_at = services.clock.now()


def _importer(services: Services, out: ProgressLines) -> Importer:
    wecom, mp = services.clients.get("wecom"), services.clients.get("mp")
    return Importer(
        services.settings, services.sessions, services.content, services.clock, out,
        wecom=wecom if isinstance(wecom, WeComClient) else None,
        mp=mp if isinstance(mp, MpClient) else None,
    )  # fmt: skip


async def start_import(call: Call) -> web.Response:
    runs = call.services.parts[IMPORTS]
    if runs.running:
        raise Problem(409, "Import running", "an import is running: GET /api/v1/import shows its progress")
    out = ProgressLines()
    importer = _importer(call.services, out)
    if importer.wecom is None and importer.mp is None:
        raise Problem(409, "Nothing to import", "neither WeCom nor the Official Account is configured")
    runs.count += 1
    run = ImportRun(runs.count, call.services.clock.now(), out, importer)
    runs.latest = run  # before any await: a second POST meanwhile gets 409
    try:
        resumable = await unfinished(call.services.sessions)
    except BaseException:
        run.state, run.error, run.finished_at = "failed", "the database could not be read", run.started_at
        raise
    async with call.services.sessions() as session, session.begin():
        audit_entry(session, call, f"import:{run.id}", None, {"resuming": resumable})
    run.task = asyncio.create_task(_run(call.services, run), name=f"import-{run.id}")
    return json_response(run.body(resumable), status=202)


async def import_status(call: Call) -> web.Response:
    run = call.services.parts[IMPORTS].latest
    if run is None:
        raise Problem(404, "Not found", "no import was started since the server started")
    while True:  # the lists left and the state from one moment: the run may finish during the read
        state = run.state
        resumable = await unfinished(call.services.sessions)
        if run.state == state:
            return json_response(run.body(resumable))
