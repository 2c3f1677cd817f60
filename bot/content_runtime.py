"""Loading operator content for the running server: all or nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

from bot.content import Content, Registry, load_content

log = logging.getLogger(__name__)


def empty_content(root: str) -> Content:
    return Content(Path(root), MappingProxyType({}))


def load_runtime_content(directory: str, registry: Registry) -> Content:
    """The validated content of ``directory``; a missing directory means no channels yet.

    A broken directory raises :class:`bot.content.ContentError` (the server refuses to start with the
    file, key and reason of every problem) — it never runs on half of the operator's changes.
    """
    if not Path(directory).is_dir():
        log.warning("content directory %s not found: no channels, messages or tags loaded", directory)
        return empty_content(directory)
    return load_content(directory, registry)
