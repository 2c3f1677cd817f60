"""The app's content: the kernel's kinds (channels, messages, tags) with every feature's, as ``serve`` loads it.

Commands and tests that read the content directory outside a running app load it here, so they accept
exactly the files the server accepts.
"""

from __future__ import annotations

import os
from datetime import date, tzinfo
from functools import cache
from typing import TextIO

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
