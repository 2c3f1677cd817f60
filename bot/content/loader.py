"""Find, parse and validate every content file; all or nothing.

Files: ``<stem>.toml`` and ``<stem>/*.toml`` in the content directory for every registered kind
(``channels``, ``messages``, ``tags`` …). Other ``.toml`` files are reported as unknown; other files
(e.g. ``media/*.png``) are ignored. Nothing is returned unless every file is valid.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bot.content.node import Node
from bot.content.problems import ContentError, Problem, Reporter
from bot.content.registry import Draft, FileKind, Located, Registry, Section
from bot.content.store import Content

_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _discover(root: Path, registry: Registry, report: Reporter) -> list[tuple[FileKind, Path]]:
    found: list[tuple[FileKind, Path]] = []
    known = ", ".join(f"{k.stem}.toml" for k in registry.kinds)
    paths = sorted(root.glob("*.toml")) + sorted(root.glob("*/*.toml"))
    for path in paths:
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        stem = path.stem if path.parent == root else path.parent.name
        kind = registry.kind(stem)
        if kind is None:
            report.add(str(path), "", f"unknown content file (known: {known}, or <kind>/*.toml)")
        else:
            found.append((kind, path))
    return found


def _read_toml(path: Path, report: Reporter) -> dict[str, Any] | None:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        report.add(str(path), "", f"not UTF-8 text (byte {exc.start})")
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_AT.search(message)
        if match is None:
            report.add(str(path), "", f"not valid TOML: {message}")
        else:
            reason = f"not valid TOML: {message[: match.start()]} (column {match.group(2)})"
            report.add(str(path), f"line {match.group(1)}", reason)
    except OSError as exc:
        report.add(str(path), "", f"cannot read: {exc.strerror}")
    return None


def _parse_section(doc: Node, section: Section[Any], draft: Draft) -> None:
    nodes = [n for n in [doc.table(section.key)] if n is not None] if section.single else doc.tables(section.key)
    bucket = draft.items.setdefault(section.key, [])
    for node in nodes:
        value = section.parse(node)
        if value is None:
            raw = node.data.get(section.ident[0]) if section.ident else None
            draft.mark_broken(section, raw if isinstance(raw, str) else None)
        else:
            bucket.append(Located(value, node.file, node.key))


def _check_unique(section: Section[Any], draft: Draft, report: Reporter) -> None:
    located = draft.get(section)
    if section.single and len(located) > 1:
        for extra in located[1:]:
            report.add(extra.file, extra.key, f"[{section.key}] is already defined in {located[0].file}")
        return
    if section.ident is None:
        return
    field, ident = section.ident
    first: dict[str, Located[Any]] = {}
    for item in located:
        value = ident(item.value)
        other = first.setdefault(value, item)
        if other is not item:
            where = f"{other.file} {other.key}"
            report.add(item.file, f"{item.key}.{field}", f"duplicate {field} {value!r} (first in {where})")


def read_content(directory: str | os.PathLike[str], registry: Registry) -> tuple[Content | None, Reporter]:
    """Parse and check everything; the Content is ``None`` whenever the reporter has problems."""
    root, report, draft = Path(directory), Reporter(), Draft()
    if not root.is_dir():
        report.add(str(root), "", "content directory not found")
        return None, report
    files = _discover(root, registry, report)
    for kind, path in files:
        data = _read_toml(path, report)
        draft.kind_files.setdefault(kind.stem, []).append(str(path))
        if data is None:
            for section in kind.sections:
                draft.mark_broken(section, None)
            continue
        doc = Node(data, str(path), "", report, root)
        for section in kind.sections:
            _parse_section(doc, section, draft)
        doc.finish()
    for kind in registry.kinds:
        for section in kind.sections:
            _check_unique(section, draft, report)
    for check in registry.checks:
        check(draft, report)
    if report:
        report.problems.sort(key=lambda p: p.file)  # stable: grouped by file, in reading order
        return None, report
    sections = {key: tuple(item.value for item in items) for key, items in draft.items.items()}
    return Content(root, MappingProxyType(sections), tuple(str(p) for _, p in files)), report


def load_content(directory: str | os.PathLike[str], registry: Registry) -> Content:
    """Load the content directory or raise :class:`ContentError` with every problem found."""
    content, report = read_content(directory, registry)
    if content is None:
        raise ContentError(tuple(report.problems))
    return content


def content_problems(directory: str | os.PathLike[str], registry: Registry) -> tuple[Problem, ...]:
    return tuple(read_content(directory, registry)[1].problems)
