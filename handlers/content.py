"""The app's content: the kernel's kinds (channels, messages, tags) with every feature's, as ``serve`` loads it.

Commands and tests that read the content directory outside a running app load it here, so they accept
exactly the files the server accepts.
"""

from __future__ import annotations

import asyncio
import os
from datetime import date, tzinfo
from functools import cache
from typing import TextIO

from sqlalchemy.exc import DBAPIError, OperationalError

from bot.config import Settings
from bot.content import Content, Problem, Registry, check_command
from bot.content import content_problems as _problems
from bot.content import load_content as _load
from bot.content.check import DEFAULT_TZ
from bot.content_runtime import load_runtime_content as _load_runtime
from bot.feature import content_registry_of


@cache
def content_registry() -> Registry:
    from handlers import features

    return content_registry_of(features())


def load_content(directory: str | os.PathLike[str]) -> Content:
    """The validated content of ``directory``, or :class:`bot.content.ContentError` with every problem."""
    return _load(directory, content_registry())


def load_runtime_content(directory: str) -> Content:
    """As the server loads it: a missing directory is empty content (no channels yet)."""
    return _load_runtime(directory, content_registry())


def content_problems(directory: str | os.PathLike[str]) -> tuple[Problem, ...]:
    return _problems(directory, content_registry())


def check_content(
    directory: str, out: TextIO | None = None, *, tz: tzinfo = DEFAULT_TZ, today: date | None = None
) -> int:
    """``siyu-bot content check`` with every feature's kinds and reports."""
    from handlers import features

    reports = [report for f in features() for report in f.content_reports]
    return check_command(directory, content_registry(), out, reports=reports, tz=tz, today=today)


async def live_content(settings: Settings, *, strict: bool = False) -> Content:
    """The content ``serve`` runs with these settings: the live revision once one was published
    (``content push``, the console), else the directory — what every command that reads content uses.
    ``strict``: a missing directory is an error (``content sync``), not empty content."""
    from bot.content_revisions import live_revision, load_files, revision_files
    from bot.db.engine import make_engine, sessionmaker

    engine = make_engine(settings.database)
    try:
        async with sessionmaker(engine)() as session:
            revision = await live_revision(session)
            files = await revision_files(session, revision) if revision is not None else None
    except (DBAPIError, OperationalError):  # no revisions table yet (not migrated): the directory
        files = None
    finally:
        await engine.dispose()
    if files is None:
        return load_content(settings.content_dir) if strict else load_runtime_content(settings.content_dir)
    return await asyncio.to_thread(load_files, files, content_registry())
