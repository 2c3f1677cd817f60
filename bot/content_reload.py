"""Reloading operator content in a running server (``kill -HUP <pid>``): all or nothing.

The new directory is loaded and validated off the event loop; only a complete, valid set replaces the
one in force (a single reference swap, so a handler sees either the old or the new content, never a
mix). Whatever was built from content — the group-post schedule — is rebuilt through the hooks
registered on :class:`ContentReloader`. A broken file keeps the old content and logs every problem.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from bot.background import Background
from bot.content import ContentError, Registry
from bot.content_runtime import load_runtime_content
from bot.context import Runtime

log = logging.getLogger(__name__)


class ContentReloader:
    def __init__(self, services: Runtime, registry: Registry) -> None:
        self._services = services
        self._registry = registry
        self.hooks: list[Callable[[], object]] = []
        self._background = Background("content")

    async def reload(self) -> list[str]:
        """Reload now; returns the problems (empty when the new content is in force)."""
        directory = self._services.settings.content_dir
        try:
            content = await asyncio.to_thread(load_runtime_content, directory, self._registry)
        except ContentError as exc:
            problems = [str(p) for p in exc.problems]
            log.error("content reload refused, the previous content stays in force:\n%s", "\n".join(problems))
            return problems
        self._services.content = content
        for hook in self.hooks:
            hook()
        log.warning("content reloaded from %s", directory)
        return []

    def on_signal(self) -> None:
        if "reload" not in self._background:  # a reload already running takes in the latest files
            self._background.spawn(self.reload(), "reload", key="reload")

    def install_signal(self) -> None:
        """SIGHUP reloads (``serve`` only; tests call :meth:`reload` directly)."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.on_signal)
