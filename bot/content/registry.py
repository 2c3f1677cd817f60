"""The registry of content file kinds: what files exist, which top-level keys they hold, how to parse.

The loader knows nothing about channels or messages. A feature adds its own files by declaring a
:class:`FileKind` (``content/drips.toml`` and ``content/drips/*.toml``) with one or more sections
(``[[drips]]``) and cross-checks, then declaring the registry it adds as its ``Feature.content``
(``Registry().with_kind(DRIP_FILES)`` … ``.with_checks(*SOP_CHECKS)``); the app merges it onto the
kernel's. Parsed items come back typed through ``content.get(DRIPS)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bot.content.node import Node
from bot.content.problems import Reporter

T = TypeVar("T")


@dataclass(frozen=True)
class Section(Generic[T]):
    """One top-level key of a file kind: an array of tables (``[[channels]]``) or, when ``single``,
    one table (``[fallbacks]``) that at most one file may define.

    ``parse`` returns ``None`` when the item had problems (already reported). ``ident`` names the
    field that must be unique across all files (e.g. ``("code", lambda c: c.code)``).
    """

    key: str
    parse: Callable[[Node], T | None]
    ident: tuple[str, Callable[[T], str]] | None = None
    single: bool = False


@dataclass(frozen=True)
class FileKind:
    """Files named ``<stem>.toml`` or ``<stem>/*.toml`` in the content directory."""

    stem: str
    sections: tuple[Section[Any], ...]


@dataclass(frozen=True)
class Located(Generic[T]):
    """A parsed item and where it was written, so cross-checks can name the file and key."""

    value: T
    file: str
    key: str


@dataclass
class Draft:
    """Everything parsed so far, with locations; cross-checks read it before Content exists.

    ``broken`` holds, per section, the idents of items that failed to parse (``None`` when unknown,
    e.g. a whole file with bad TOML): a reference to one of them is not reported as missing, since the
    operator is already told what is wrong with the item itself.
    """

    items: dict[str, list[Located[Any]]] = field(default_factory=dict)
    kind_files: dict[str, list[str]] = field(default_factory=dict)
    broken: dict[str, set[str | None]] = field(default_factory=dict)

    def complete(self, section: Section[Any]) -> bool:
        return section.key not in self.broken

    def may_exist(self, section: Section[Any], ident: str) -> bool:
        """Whether ``ident`` might name an item of ``section`` that failed to parse."""
        broken = self.broken.get(section.key, set())
        return None in broken or ident in broken

    def mark_broken(self, section: Section[Any], ident: str | None) -> None:
        self.broken.setdefault(section.key, set()).add(ident)

    def get(self, section: Section[T]) -> list[Located[T]]:
        found: list[Located[T]] = self.items.get(section.key, [])
        return found

    def first_file(self, stem: str, default: str) -> str:
        """Where to report a problem about a kind as a whole (e.g. "no default channel")."""
        files = self.kind_files.get(stem)
        return files[0] if files else default


Check = Callable[[Draft, Reporter], None]


@dataclass(frozen=True)
class Registry:
    """File kinds and the checks that run across them once every file has parsed."""

    kinds: tuple[FileKind, ...] = ()
    checks: tuple[Check, ...] = ()

    def with_kind(self, kind: FileKind, *checks: Check) -> Registry:
        if any(k.stem == kind.stem for k in self.kinds):
            raise ValueError(f"file kind {kind.stem!r} is already registered")
        keys = {s.key for k in self.kinds for s in k.sections}
        clash = keys & {s.key for s in kind.sections}
        if clash:
            raise ValueError(f"section(s) {sorted(clash)} already registered")
        return Registry((*self.kinds, kind), (*self.checks, *checks))

    def with_checks(self, *checks: Check) -> Registry:
        return Registry(self.kinds, (*self.checks, *checks))

    def merged(self, other: Registry) -> Registry:
        """This registry with ``other``'s kinds and checks added (a feature's, onto the kernel's)."""
        merged = self
        for kind in other.kinds:
            merged = merged.with_kind(kind)
        return merged.with_checks(*other.checks)

    def kind(self, stem: str) -> FileKind | None:
        return next((k for k in self.kinds if k.stem == stem), None)
