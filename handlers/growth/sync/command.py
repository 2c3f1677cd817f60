"""``siyu-bot content sync [--dry-run]``: make the platform match the content files.

Order: load the content (a broken file → its problems printed, exit 1, nothing read or written) → read
the records → plan from the records alone (attachment media: from the records, the files' sha256 and the
clock) → for a real run, read the tag lists *only if* a tag would be created (to adopt existing ones),
re-plan, print, apply. An unchanged content set with fresh media makes no call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import aiohttp
from sqlalchemy.exc import DBAPIError

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.content import Content, ContentError
from bot.db.engine import make_engine, sessionmaker
from bot.platform import DbTokenStore, MpClient, PlatformError, WeComClient
from handlers.content import live_content
from handlers.growth.sync.apply import apply, read_platform_state
from handlers.growth.sync.media import media_objects, plan_media
from handlers.growth.sync.model import Action, Plan, PlatformState, Record
from handlers.growth.sync.planner import plan_sync
from handlers.growth.sync.records import RecordStore
from handlers.growth.sync.target import SyncResult, SyncTarget


async def load_or_report(settings: Settings, out: TextIO) -> Content | None:
    """The content in force (the live revision, else the directory), or ``None`` with its problems."""
    try:
        return await live_content(settings, strict=True)
    except ContentError as exc:
        print(f"content has {len(exc.problems)} problem(s); nothing was synced:", file=out)
        for problem in exc.problems:
            print(f"  {problem}", file=out)
        return None


@asynccontextmanager
async def open_store(settings: Settings, clock: Clock) -> AsyncIterator[RecordStore]:
    """The record store on a fresh engine, disposed on exit (the command owns it)."""
    engine = make_engine(settings.database)
    try:
        yield RecordStore(sessionmaker(engine), clock)
    finally:
        await engine.dispose()


def build_target(settings: Settings, store: RecordStore, session: aiohttp.ClientSession, clock: Clock) -> SyncTarget:
    """Clients only for the platforms that are configured; a needed missing one is reported per object."""
    tokens = DbTokenStore(store.sessionmaker, clock)
    w, m = settings.wecom, settings.official_account
    wecom = WeComClient(session, w, tokens, clock) if w.corp_id and w.secret else None
    mp = MpClient(session, m, tokens, clock) if m.app_id and m.app_secret else None
    return SyncTarget(store, wecom, mp, media_root=Path(settings.content_dir))


def full_plan(
    content: Content, records: Sequence[Record], media: Sequence[Action], platform: PlatformState | None = None
) -> Plan:
    """The objects' plan (:func:`plan_sync`) followed by the attachment media actions."""
    plan = plan_sync(content, records, platform)
    return Plan(plan.actions + tuple(media), plan.platform)


def print_plan(plan: Plan, out: TextIO) -> None:
    for action in plan.actions:
        print(action.line(), file=out)
    print(plan.summary(), file=out)


def print_result(result: SyncResult, out: TextIO) -> None:
    for line in result.lines():
        print(line, file=out)
    print(f"applied: {len(result.applied)} object(s), failed: {len(result.errors)}", file=out)


async def _apply(
    content: Content, records: Sequence[Record], media: Sequence[Action], target: SyncTarget, out: TextIO
) -> int:
    plan = full_plan(content, records, media)
    try:
        plan = full_plan(content, records, media, await read_platform_state(plan, target))
        print_plan(plan, out)
        result = await apply(plan, target)
    except PlatformError as exc:
        print(f"error: {exc}; sync stopped (objects created so far are recorded, run it again)", file=out)
        return 1
    print_result(result, out)
    return 1 if result.errors else 0


async def sync_command(settings: Settings, dry_run: bool, out: TextIO, *, clock: Clock | None = None) -> int:
    """Plan (and unless ``dry_run``, apply) the content sync; 0 on success, 1 on any problem.

    ``clock`` (default: the system clock) decides which uploaded media are about to expire.
    """
    content = await load_or_report(settings, out)
    if content is None:
        return 1
    clock = clock or SystemClock()
    async with open_store(settings, clock) as store:
        try:
            records = await store.load()
        except DBAPIError as exc:
            print(f"error: cannot read platform_objects (run `siyu-bot migrate` first): {exc.orig}", file=out)
            return 1
        media = plan_media(media_objects(content), records, clock.now())
        plan = full_plan(content, records, media)
        if dry_run or not plan.has_work:
            print_plan(plan, out)
            print("dry run: nothing was changed" if dry_run else "nothing to do", file=out)
            return 0
        async with aiohttp.ClientSession() as session:
            return await _apply(content, records, media, build_target(settings, store, session, clock), out)
