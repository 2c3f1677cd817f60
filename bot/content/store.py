""":class:`Content`: the loaded, validated, immutable set of operator content.

Handlers hold one ``Content`` at a time; a reload builds a new one or raises, so a broken file never
replaces a good set. Lookups are by the values callbacks carry (``State``, QR scene, message id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast

from bot.content.messages import FALLBACKS, MESSAGES
from bot.content.model import Message, TagGroup, media_path
from bot.content.registry import Section
from bot.content.tags import TAG_GROUPS

T = TypeVar("T")


@dataclass(frozen=True)
class Content:
    """Everything under the content directory. ``get(SECTION)`` reaches any registered kind; the kernel's own
    (channels, messages, tags) have accessors here, a feature's through its view (:meth:`memo`)."""

    root: Path
    sections: Mapping[str, tuple[Any, ...]]
    files: tuple[str, ...] = ()
    _memo: dict[Callable[[Content], Any], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def get(self, section: Section[T]) -> tuple[T, ...]:
        return cast(tuple[T, ...], self.sections.get(section.key, ()))

    def memo(self, view: Callable[[Content], T]) -> T:
        """``view(self)``, computed once per loaded content: a feature's typed view of its own kinds
        (``handlers/sop/content``'s ``sop_of(content).drips``) without the kernel knowing the feature."""
        if view not in self._memo:
            self._memo[view] = view(self)
        return cast(T, self._memo[view])

    def one(self, section: Section[T]) -> T | None:
        """The value of a ``single`` section (a table defined in at most one file)."""
        found = self.get(section)
        return found[0] if found else None

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.get(MESSAGES)

    @property
    def tag_groups(self) -> tuple[TagGroup, ...]:
        return self.get(TAG_GROUPS)

    @property
    def fallbacks(self) -> Mapping[str, str]:
        return self.one(FALLBACKS) or MappingProxyType({})

    @property
    def tag_count(self) -> int:
        return sum(len(g.tags) for g in self.tag_groups)

    @cached_property
    def _by_message_id(self) -> Mapping[str, Message]:
        return {m.id: m for m in self.messages}

    def message(self, message_id: str) -> Message | None:
        return self._by_message_id.get(message_id)

    def media_paths(self) -> frozenset[str]:
        """Content-relative files that must be uploaded for their media_id (sync keeps them current)."""
        return frozenset(
            path
            for m in self.messages
            for v in m.variants
            for a in v.attachments
            if (path := media_path(a)) is not None
        )
