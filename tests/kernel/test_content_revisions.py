"""Content revisions in the database: publish, every replica switches, roll back, pull — all or nothing.

Two running apps share one database (two replicas); a revision published outside them (``content push``'s
code) is in force on both within ``content_poll_seconds``, and the next new friend is welcomed with the new
text — observed in the simulator's record. A revision that does not load is never stored.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.content import ContentError
from bot.content_revisions import (
    RevisionError,
    create_draft,
    diff_files,
    live_revision,
    publish_draft,
    publish_files,
    put_draft_file,
    read_directory,
    revision_files,
    rollback,
    write_directory,
)
from bot.db.models import ContentRevision, ContentRevisionFile
from bot.rig import Rig
from handlers.content import content_registry
from handlers.growth.content import channels_of
from tests.support.apps import start_rig
from tests.support.settings import SHIPPED_CONTENT

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NEW_TEXT = "【新版欢迎语】"


def _with_new_welcome(files: dict[str, bytes]) -> dict[str, bytes]:
    text = files["messages.toml"].decode()
    assert text.count("小鹿") >= 1  # the staff member's neutral name in [fallbacks], in every welcome
    return {**files, "messages.toml": text.replace("小鹿", f"小鹿{NEW_TEXT}").encode()}


@pytest.fixture
async def replicas(settings: Settings, clock: FrozenClock) -> AsyncIterator[tuple[Rig, Rig]]:
    fast = settings.model_copy(update={"content_poll_seconds": 0.2})
    first = await start_rig(fast, clock, rng=1)
    second = await start_rig(fast, clock, rng=2)
    yield first, second
    await second.close()
    await first.close()


async def _switched(rig: Rig, revision: int, timeout: float = 5.0) -> float:
    """Seconds until the rig runs ``revision`` (fails after ``timeout``: the promise is 5 s)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while rig.services.reloader.revision != revision:
        assert loop.time() - start < timeout, f"revision {revision} not in force within {timeout} s"
        await asyncio.sleep(0.05)
    return loop.time() - start


async def test_a_published_revision_is_in_force_on_every_replica_and_welcomes_with_its_text(
    replicas: tuple[Rig, Rig],
) -> None:
    first, second = replicas
    files = _with_new_welcome(read_directory(SHIPPED_CONTENT))
    async with first.services.sessions() as session, session.begin():
        done = await publish_files(session, files, content_registry(), author="test", message="new welcome", now=NOW)
    assert done.created
    for rig in replicas:
        await _switched(rig, done.revision)
    old_content = first.services.content
    added = await second.sim.add_friend("lulu", state="pkgcard", name="王小米")
    await second.drain()
    await first.drain()
    welcome = second.state.last_call("externalcontact/send_welcome_msg")
    assert welcome.body["welcome_code"] == added.welcome_code
    assert NEW_TEXT in welcome.body["text"]["content"]
    # the same files again: no new revision, nothing switches
    async with first.services.sessions() as session, session.begin():
        again = await publish_files(session, files, content_registry(), author="test", message="", now=NOW)
    assert (again.revision, again.created) == (done.revision, False)
    await asyncio.sleep(0.5)
    assert first.services.content is old_content


async def test_a_broken_revision_is_refused_and_nothing_is_stored(replicas: tuple[Rig, Rig]) -> None:
    first, _ = replicas
    files = read_directory(SHIPPED_CONTENT)
    broken = {**files, "channels.toml": files["channels.toml"].replace(b'code = "pkgcard"', b"code = 7", 1)}
    async with first.services.sessions() as session, session.begin():
        with pytest.raises(ContentError) as refused:
            await publish_files(session, broken, content_registry(), author="test", message="", now=NOW)
    assert any(p.file == "channels.toml" and "code" in p.key for p in refused.value.problems)
    async with first.services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ContentRevision)) == 0
        assert await session.scalar(select(func.count()).select_from(ContentRevisionFile)) == 0
        assert await live_revision(session) is None
    assert first.services.reloader.revision is None  # still the directory's content


async def test_draft_edit_check_publish_and_roll_back(replicas: tuple[Rig, Rig]) -> None:
    first, second = replicas
    registry = content_registry()
    async with first.services.sessions() as session, session.begin():
        base = await publish_files(
            session, read_directory(SHIPPED_CONTENT), registry, author="test", message="", now=NOW
        )
        draft = await create_draft(session, author="operator", message="rename", now=NOW)
        files = await revision_files(session, draft)
        renamed = files["channels.toml"].replace('name = "包裹卡"'.encode(), 'name = "包裹卡（双12版）"'.encode(), 1)
        await put_draft_file(session, draft, "channels.toml", b"[[channels]]\ncode = 1\n")
        problems = await publish_draft(session, draft, registry, who="admin", now=NOW)
    assert problems and all(p.file == "channels.toml" for p in problems)  # shown next to the field
    async with first.services.sessions() as session, session.begin():
        assert await live_revision(session) == base.revision  # nothing changed
        await put_draft_file(session, draft, "channels.toml", renamed)
        diff = diff_files(await revision_files(session, base.revision), await revision_files(session, draft))
        assert any(line.startswith("+") and "双12版" in line for line in diff)
        assert await publish_draft(session, draft, registry, who="admin", now=NOW) == []
    for rig in replicas:
        await _switched(rig, draft)
    assert channels_of(second.services.content).channel("pkgcard").name.endswith("（双12版）")  # type: ignore[union-attr]
    async with first.services.sessions() as session, session.begin():
        assert await rollback(session, to=None, who="admin", now=NOW) == base.revision
    for rig in replicas:
        await _switched(rig, base.revision)
    assert not channels_of(first.services.content).channel("pkgcard").name.endswith("（双12版）")  # type: ignore[union-attr]
    async with first.services.sessions() as session, session.begin():
        with pytest.raises(RevisionError, match="first published revision"):
            await rollback(session, to=None, who="admin", now=NOW)
        with pytest.raises(RevisionError, match="not a draft"):
            await put_draft_file(session, draft, "x.toml", b"")
        with pytest.raises(RevisionError, match="not a path inside"):
            other = await create_draft(session, author="operator", message="", now=NOW)
            await put_draft_file(session, other, "../escape.toml", b"")


async def test_a_replica_started_later_runs_the_live_revision(settings: Settings, clock: FrozenClock) -> None:
    first = await start_rig(settings, clock)
    try:
        files = _with_new_welcome(read_directory(SHIPPED_CONTENT))
        async with first.services.sessions() as session, session.begin():
            done = await publish_files(session, files, content_registry(), author="test", message="", now=NOW)
    finally:
        await first.close()
    later = await start_rig(settings, clock)
    try:
        assert later.services.reloader.revision == done.revision  # before intake opened
        assert any(NEW_TEXT in text for text in later.services.content.fallbacks.values())  # 小鹿 is a fallback
    finally:
        await later.close()


def test_pull_makes_the_directory_hold_exactly_the_revision(tmp_path: Path) -> None:
    target = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, target)
    (target / "stale.toml").write_text("# not in the revision\n", encoding="utf-8")
    (target / ".git-keep").write_text("hidden files stay\n", encoding="utf-8")
    files = _with_new_welcome(read_directory(SHIPPED_CONTENT))
    assert write_directory(files, target) == (1, 1)
    assert read_directory(target) == files
    assert (target / ".git-keep").exists()
    assert write_directory(files, target) == (0, 0)
