"""Content revisions in the database: the operator content every replica runs, published all at once.

The ``content/`` directory stays the reviewed source (``content push`` publishes it, ``content pull`` writes
the live revision back for git); the database holds every published version and the drafts the console
edits. A revision is the whole directory — TOML files and the media they name — so it validates and
switches as one: :class:`bot.db.models.ContentLive` names the revision in force, and each replica's
:class:`bot.content_reload.ContentWatcher` sees a change within its poll interval and swaps its
:class:`~bot.content.Content` in one reference assignment, or keeps the old one if the new one does not
load. Nothing is half-applied: a revision is checked (``read_content`` with the app's registry) before
it can be published.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.content import Content, ContentError, Problem, Registry
from bot.content.loader import read_content
from bot.db.models import ContentLive, ContentRevision, ContentRevisionFile

Files = Mapping[str, bytes]  # content-relative POSIX path → bytes

MAX_FILE_BYTES = 10 * 1024 * 1024  # the platform's own media limits are lower (images 10 MB)
MAX_TOTAL_BYTES = 64 * 1024 * 1024
LIVE_ROW = 1


class RevisionError(ValueError):
    """A revision operation that cannot be done (unknown revision, not a draft, bad path)."""


@dataclass(frozen=True)
class RevisionInfo:
    id: int
    parent_id: int | None
    state: str
    digest: str
    author: str
    message: str
    created_at: datetime
    published_at: datetime | None
    published_by: str | None
    live: bool


@dataclass(frozen=True)
class Published:
    revision: int
    created: bool  # False: the same files were already a revision (no new one), now live


# files ------------------------------------------------------------------------------------------------


def _checked_path(path: str) -> str:
    """A content-relative POSIX path with no way out of the directory; else :class:`RevisionError`."""
    pure = PurePosixPath(path)
    if (
        not path
        or pure.is_absolute()
        or ".." in pure.parts
        or "\\" in path
        or any(p.startswith(".") for p in pure.parts)
    ):
        raise RevisionError(f"{path!r}: not a path inside the content directory")
    return pure.as_posix()


def read_directory(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file under ``root`` (hidden files and folders skipped), by relative POSIX path."""
    base = Path(root)
    if not base.is_dir():
        raise RevisionError(f"{base}: content directory not found")
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise RevisionError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        total += len(data)
        files[rel.as_posix()] = data
    if total > MAX_TOTAL_BYTES:
        raise RevisionError(f"{base}: more than {MAX_TOTAL_BYTES // (1024 * 1024)} MB of content")
    return files


def digest_of(files: Files) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        h.update(path.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def materialize(files: Files, cache: str | os.PathLike[str] | None = None) -> Path:
    """The files as a directory (content-addressed, so replicas and reruns share it); written to a temporary
    sibling first and renamed, so a reader never sees half of it."""
    root = Path(cache) if cache is not None else Path(tempfile.gettempdir()) / "siyu-bot-content"
    target = root / digest_of(files)[:32]
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        for rel, data in files.items():
            path = staging / _checked_path(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def check_files(
    files: Files, registry: Registry, cache: str | os.PathLike[str] | None = None
) -> tuple[Content | None, list[Problem]]:
    """Load ``files`` as the server would: the content, or every problem (paths relative to the revision)."""
    root = materialize(files, cache)
    content, report = read_content(root, registry)
    prefix = f"{root}{os.sep}"
    problems = [Problem(p.file.removeprefix(prefix), p.key, p.reason) for p in report.problems]
    return content, problems


def load_files(files: Files, registry: Registry, cache: str | os.PathLike[str] | None = None) -> Content:
    content, problems = check_files(files, registry, cache)
    if content is None:
        raise ContentError(tuple(problems))
    return content


def write_directory(files: Files, root: str | os.PathLike[str]) -> tuple[int, int]:
    """Make ``root`` hold exactly ``files`` (hidden files kept): returns (written, removed)."""
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    current = read_directory(base)
    written = removed = 0
    for rel, data in files.items():
        if current.get(rel) != data:
            path = base / _checked_path(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written += 1
    for rel in set(current) - set(files):
        (base / rel).unlink()
        removed += 1
    for folder in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        rel_parts = folder.relative_to(base).parts
        if not any(part.startswith(".") for part in rel_parts) and not any(folder.iterdir()):
            folder.rmdir()
    return written, removed


def diff_files(old: Files, new: Files, old_name: str = "live", new_name: str = "new") -> list[str]:
    """A unified diff of the text files; binary files are named as changed."""
    lines: list[str] = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        try:
            a_text = (a or b"").decode("utf-8").splitlines(keepends=True)
            b_text = (b or b"").decode("utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            lines.append(f"binary {path} {'added' if a is None else 'removed' if b is None else 'changed'}\n")
            continue
        lines += difflib.unified_diff(
            a_text,
            b_text,
            f"{old_name}/{path}" if a is not None else "/dev/null",
            f"{new_name}/{path}" if b is not None else "/dev/null",
        )
    return lines


# the database ----------------------------------------------------------------------------------------


async def live_revision(session: AsyncSession) -> int | None:
    return await session.scalar(select(ContentLive.revision_id).where(ContentLive.id == LIVE_ROW))


async def revision_files(session: AsyncSession, revision: int) -> dict[str, bytes]:
    rows = await session.execute(
        select(ContentRevisionFile.path, ContentRevisionFile.data).where(ContentRevisionFile.revision_id == revision)
    )
    return {path: bytes(data) for path, data in rows.all()}


async def _revision(session: AsyncSession, revision: int) -> ContentRevision:
    row = await session.get(ContentRevision, revision)
    if row is None:
        raise RevisionError(f"revision {revision} not found")
    return row


async def _set_live(session: AsyncSession, revision: int, who: str, now: datetime) -> None:
    changed = await session.execute(
        update(ContentLive)
        .where(ContentLive.id == LIVE_ROW)
        .values(revision_id=revision, switched_at=now, switched_by=who)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        session.add(ContentLive(id=LIVE_ROW, revision_id=revision, switched_at=now, switched_by=who))


async def _store(
    session: AsyncSession, files: Files, *, state: str, parent: int | None, author: str, message: str, now: datetime
) -> ContentRevision:
    row = ContentRevision(
        parent_id=parent, state=state, digest=digest_of(files), author=author, message=message, created_at=now
    )
    session.add(row)
    await session.flush()
    session.add_all(ContentRevisionFile(revision_id=row.id, path=_checked_path(p), data=d) for p, d in files.items())
    return row


async def publish_files(
    session: AsyncSession, files: Files, registry: Registry, *, author: str, message: str, now: datetime
) -> Published:
    """Check ``files`` and make them the live revision (``content push``); :class:`ContentError` if they
    do not load — then nothing is stored. The same files as an earlier published revision reuse it."""
    load_files(files, registry)
    digest = digest_of(files)
    same = await session.scalar(
        select(ContentRevision.id)
        .where(ContentRevision.digest == digest, ContentRevision.state == "published")
        .order_by(ContentRevision.id.desc())
        .limit(1)
    )
    if same is not None:
        if await live_revision(session) != same:
            await _set_live(session, same, author, now)
        return Published(same, created=False)
    row = await _store(
        session, files, state="published", parent=await live_revision(session), author=author, message=message, now=now
    )
    row.published_at, row.published_by = now, author
    await _set_live(session, row.id, author, now)
    return Published(row.id, created=True)


async def create_draft(
    session: AsyncSession, *, author: str, message: str, now: datetime, files: Files | None = None
) -> int:
    """A draft starting from the live revision (or from ``files``, e.g. the directory)."""
    parent = await live_revision(session)
    if files is None:
        if parent is None:
            raise RevisionError("no live revision to start a draft from: run `siyu-bot content push` first")
        files = await revision_files(session, parent)
    row = await _store(session, files, state="draft", parent=parent, author=author, message=message, now=now)
    return row.id


async def _draft(session: AsyncSession, draft: int) -> ContentRevision:
    row = await _revision(session, draft)
    if row.state != "draft":
        raise RevisionError(f"revision {draft} is {row.state}, not a draft")
    return row


async def put_draft_file(session: AsyncSession, draft: int, path: str, data: bytes | None) -> None:
    """Replace (or with ``None`` remove) one file of a draft."""
    row = await _draft(session, draft)
    rel = _checked_path(path)
    if data is not None and len(data) > MAX_FILE_BYTES:
        raise RevisionError(f"{rel}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    await session.execute(
        delete(ContentRevisionFile).where(ContentRevisionFile.revision_id == draft, ContentRevisionFile.path == rel)
    )
    if data is not None:
        session.add(ContentRevisionFile(revision_id=draft, path=rel, data=data))
    await session.flush()
    row.digest = digest_of(await revision_files(session, draft))


async def publish_draft(
    session: AsyncSession, draft: int, registry: Registry, *, who: str, now: datetime
) -> list[Problem]:
    """Publish a draft if it loads: returns its problems (then nothing changes), else ``[]`` and it is live."""
    row = await _draft(session, draft)
    files = await revision_files(session, draft)
    content, problems = check_files(files, registry)
    if content is None:
        return problems
    row.state, row.published_at, row.published_by = "published", now, who
    await _set_live(session, draft, who, now)
    return []


async def discard_draft(session: AsyncSession, draft: int) -> None:
    row = await _draft(session, draft)
    row.state = "discarded"


async def rollback(session: AsyncSession, *, to: int | None, who: str, now: datetime) -> int:
    """Make ``to`` (a published revision) live again; without ``to``, the one before the live one."""
    live = await live_revision(session)
    if to is None:
        if live is None:
            raise RevisionError("no live revision to roll back from")
        to = await session.scalar(
            select(ContentRevision.id)
            .where(ContentRevision.state == "published", ContentRevision.id < live)
            .order_by(ContentRevision.id.desc())
            .limit(1)
        )
        if to is None:
            raise RevisionError(f"revision {live} is the first published revision: nothing to roll back to")
    row = await _revision(session, to)
    if row.state != "published":
        raise RevisionError(f"revision {to} is {row.state}: only a published revision can be made live again")
    await _set_live(session, to, who, now)
    return to


async def revisions(
    session: AsyncSession, limit: int = 20, states: Iterable[str] = ("published", "draft")
) -> list[RevisionInfo]:
    live = await live_revision(session)
    rows = await session.scalars(
        select(ContentRevision)
        .where(ContentRevision.state.in_(list(states)))
        .order_by(ContentRevision.id.desc())
        .limit(limit)
    )
    return [_info(r, live) for r in rows]


async def revision_info(session: AsyncSession, revision: int) -> RevisionInfo | None:
    row = await session.get(ContentRevision, revision)
    return None if row is None else _info(row, await live_revision(session))


def _info(r: ContentRevision, live: int | None) -> RevisionInfo:
    return RevisionInfo(
        id=r.id,
        parent_id=r.parent_id,
        state=r.state,
        digest=r.digest,
        author=r.author,
        message=r.message,
        created_at=r.created_at,
        published_at=r.published_at,
        published_by=r.published_by,
        live=r.id == live,
    )
