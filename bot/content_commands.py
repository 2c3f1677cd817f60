"""``siyu-bot content push|pull|revisions|rollback|diff``: the content revisions in the database.

``push`` checks the directory exactly as ``content check`` does and publishes it; every running replica
switches within ``content_poll_seconds``. ``pull`` writes the live revision back into the directory for
review in git. ``rollback`` makes an earlier published revision live again. See docs/content.md,
"Revisions".
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import content_dir_of, content_registry_from, in_transaction, migrated_settings_of
from bot.config import Settings
from bot.content import ContentError
from bot.content_revisions import (
    RevisionError,
    diff_files,
    live_revision,
    publish_files,
    read_directory,
    revision_files,
    revisions,
    rollback,
    write_directory,
)

T = TypeVar("T")


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run(settings: Settings, work: Callable[[AsyncSession], Awaitable[int]]) -> int:
    try:
        return asyncio.run(in_transaction(settings, work))
    except RevisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_push(args: argparse.Namespace) -> int:
    settings = migrated_settings_of(args)
    directory = args.dir or content_dir_of(args)
    try:
        files = read_directory(directory)
    except RevisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    registry = content_registry_from(args)

    async def push(session: AsyncSession) -> int:
        try:
            done = await publish_files(
                session, files, registry, author=_who(), message=args.message or "", now=datetime.now(UTC)
            )
        except ContentError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print("nothing published: fix the problems above (siyu-bot content check)", file=sys.stderr)
            return 1
        if done.created:
            print(f"published revision {done.revision} from {directory} ({len(files)} files); live on every replica")
        else:
            print(f"unchanged: {directory} is revision {done.revision}, which is live")
        return 0

    return _run(settings, push)


def cmd_pull(args: argparse.Namespace) -> int:
    settings = migrated_settings_of(args)
    directory = args.dir or content_dir_of(args)

    async def pull(session: AsyncSession) -> int:
        revision = args.revision if args.revision is not None else await live_revision(session)
        if revision is None:
            raise RevisionError("no revision has been published yet (siyu-bot content push)")
        files = await revision_files(session, revision)
        if not files:
            raise RevisionError(f"revision {revision} not found")
        written, removed = write_directory(files, directory)
        print(f"revision {revision} → {directory}: {written} files written, {removed} removed")
        return 0

    return _run(settings, pull)


def cmd_revisions(args: argparse.Namespace) -> int:
    settings = migrated_settings_of(args)
    tz = settings.tz

    async def show(session: AsyncSession) -> int:
        rows = await revisions(session, args.limit)
        print(f"{'id':>5}  {'state':<10}{'created':<18}{'author':<22}message")
        for r in rows:
            mark = "live" if r.live else r.state
            created = r.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            print(f"{r.id:>5}  {mark:<10}{created:<18}{r.author[:21]:<22}{r.message}")
        if not rows:
            print("(no revisions: the server runs the content directory; siyu-bot content push publishes it)")
        return 0

    return _run(settings, show)


def cmd_rollback(args: argparse.Namespace) -> int:
    settings = migrated_settings_of(args)

    async def back(session: AsyncSession) -> int:
        to = await rollback(session, to=args.revision, who=_who(), now=datetime.now(UTC))
        print(f"revision {to} is live again on every replica")
        return 0

    return _run(settings, back)


def cmd_diff(args: argparse.Namespace) -> int:
    """The directory (or ``--revision``) against the live revision."""
    settings = migrated_settings_of(args)
    directory = args.dir or content_dir_of(args)

    async def diff(session: AsyncSession) -> int:
        live = await live_revision(session)
        old = await revision_files(session, live) if live is not None else {}
        new = await revision_files(session, args.revision) if args.revision is not None else read_directory(directory)
        name = f"revision-{args.revision}" if args.revision is not None else os.path.basename(directory) or "content"
        lines = diff_files(old, new, f"live-{live}" if live is not None else "empty", name)
        sys.stdout.writelines(lines)
        if not lines:
            print("no difference")
        return 0

    return _run(settings, diff)


def add_revision_commands(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    push = csub.add_parser("push", help="check the content directory and publish it as the live revision")
    push.add_argument("--dir", help="content directory (default: content_dir of the config)")
    push.add_argument("-m", "--message", help="what changed (shown by `content revisions`)")
    push.set_defaults(func=cmd_push)
    pull = csub.add_parser("pull", help="write the live revision (or --revision N) into the content directory")
    pull.add_argument("--dir", help="content directory (default: content_dir of the config)")
    pull.add_argument("--revision", type=int)
    pull.set_defaults(func=cmd_pull)
    revs = csub.add_parser("revisions", help="published revisions and drafts, newest first")
    revs.add_argument("--limit", type=int, default=20)
    revs.set_defaults(func=cmd_revisions)
    back = csub.add_parser("rollback", help="make the previous (or --revision N) published revision live")
    back.add_argument("--revision", type=int)
    back.set_defaults(func=cmd_rollback)
    diff = csub.add_parser("diff", help="the content directory (or --revision N) against the live revision")
    diff.add_argument("--dir", help="content directory (default: content_dir of the config)")
    diff.add_argument("--revision", type=int)
    diff.set_defaults(func=cmd_diff)
