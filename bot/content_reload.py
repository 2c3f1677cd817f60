"""Switching the operator content of a running server: all or nothing.

Where content comes from: the live revision in the database once one was published (``content push``, the
console; :mod:`bot.content_revisions`), else the ``content_dir`` directory. Every replica polls the live
revision's id (one indexed row, every ``content_poll_seconds``) and switches when it changes; SIGHUP
(``kill -HUP <pid>``) reloads now. The new set is loaded and validated off the event loop; only a
complete, valid set replaces the one in force (a single reference swap, so a handler sees either the old
or the new content, never a mix). Whatever was built from content — the group-post schedule — is rebuilt
through the hooks registered on :class:`ContentReloader`. A set that does not load keeps the old content
and logs every problem.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from bot.background import Background
from bot.content import Content, ContentError, Registry
from bot.content_revisions import live_revision, load_files, revision_files
from bot.content_runtime import load_runtime_content
from bot.context import Runtime

log = logging.getLogger(__name__)


class ContentReloader:
    def __init__(self, services: Runtime, registry: Registry) -> None:
        self._services = services
        self._registry = registry
        self.hooks: list[Callable[[], object]] = []
        self._background = Background("content")
        self.revision: int | None = None  # the database revision in force; None: the directory's files
        self._lock = asyncio.Lock()

    async def reload(self) -> list[str]:
        """Reload now from the live revision (or the directory when none was published); returns the
        problems (empty when the new content is in force)."""
        async with self._lock:
            revision = await self.live()
            return await self._switch(revision)

    async def follow(self) -> list[str]:
        """Switch if the live revision changed since the last look (the poll)."""
        revision = await self.live()
        if revision == self.revision:
            return []
        async with self._lock:
            return await self._switch(revision) if revision != self.revision else []

    async def live(self) -> int | None:
        async with self._services.sessions() as session:
            return await live_revision(session)

    async def _switch(self, revision: int | None) -> list[str]:
        source = self._services.settings.content_dir if revision is None else f"revision {revision}"
        try:
            content = await self._load(revision)
        except ContentError as exc:
            problems = [str(p) for p in exc.problems]
            log.error("content from %s refused, the previous content stays in force:\n%s", source, "\n".join(problems))
            return problems
        self._services.content, self.revision = content, revision
        for hook in self.hooks:
            hook()
        log.warning("content reloaded from %s", source)
        return []

    async def _load(self, revision: int | None) -> Content:
        if revision is None:
            return await asyncio.to_thread(load_runtime_content, self._services.settings.content_dir, self._registry)
        async with self._services.sessions() as session:
            files = await revision_files(session, revision)
        return await asyncio.to_thread(load_files, files, self._registry)

    def start(self, poll_seconds: float) -> None:
        """Follow the live revision: every replica switches within ``poll_seconds`` of a publish."""
        self._background.every("follow", poll_seconds, self.follow)

    async def stop(self) -> None:
        await self._background.stop()

    def on_signal(self) -> None:
        if "reload" not in self._background:  # a reload already running takes in the latest files
            self._background.spawn(self.reload(), "reload", key="reload")

    def install_signal(self) -> None:
        """SIGHUP reloads (``serve`` only; tests call :meth:`reload` directly)."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.on_signal)
