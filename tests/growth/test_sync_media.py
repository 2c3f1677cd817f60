"""Attachment files → WeCom temporary media during ``content sync`` and :func:`refresh_media`: uploaded
once, re-uploaded when the file changes or the media_id nears its 3-day expiry, and accepted by the
simulated ``send_welcome_msg``. The simulator and the sync share one frozen clock."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import segno
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.engine import make_engine, sessionmaker
from bot.platform import DbTokenStore, WeComClient
from bot.rig import Rig
from bot.simulator import SimState
from handlers.growth.sync import MediaRefresher, refresh_media, sync_command
from handlers.growth.sync.records import RecordStore
from handlers.growth.synced import MEDIA, all_remote_ids
from tests.growth.helpers import CHAT_IDS, STAFF, ServerFactory, seed, serve_sim, synced_rows, write_content
from tests.support.apps import start_rig

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
HALF_LIFE = timedelta(days=2.5)

MESSAGES = """
[fallbacks]
nickname = "朋友"

[[messages]]
id = "hi"
text = "你好{nickname}"

[[messages]]
id = "gift"
text = "送你一份礼物"

[[messages.attachments]]
msgtype = "image"
path = "media/cover.png"

[[messages.attachments]]
msgtype = "miniprogram"
title = "1分钱领礼包"
appid = "wx8d4c2b1a9e7f6035"
page = "pages/gift/index"
pic_path = "media/mini.jpg"

[[messages.attachments]]
msgtype = "file"
path = "media/menu.pdf"
"""


def png(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload).save(out, kind="png", scale=4)
    return out.getvalue()


def write_media_content(root: Path) -> Path:
    write_content(root)
    (root / "messages.toml").write_text(MESSAGES, encoding="utf-8")
    media = root / "media"
    media.mkdir()
    (media / "cover.png").write_bytes(png("cover v1"))
    (media / "mini.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 60)
    (media / "menu.pdf").write_bytes(b"%PDF-1.4 menu of the week")
    return root


class MediaWorld:
    def __init__(self, state: SimState, settings: Settings, content_dir: Path, clock: FrozenClock) -> None:
        self.state, self.settings, self.content_dir, self.clock = state, settings, content_dir, clock
        self.output = ""

    async def sync(self, dry_run: bool = False) -> int:
        out = io.StringIO()
        code = await sync_command(self.settings, dry_run, out, clock=self.clock)
        self.output = out.getvalue()
        return code

    def uploads_since(self, mark: int) -> list[str]:
        return [
            c.body["media"]["filename"]
            for c in self.state.calls[mark:]
            if c.api == "media/upload" and c.errcode == 0 and c.body is not None
        ]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def world(aiohttp_server: ServerFactory, db_url: str, tmp_path: Path, clock: FrozenClock) -> MediaWorld:
    content_dir = write_media_content(tmp_path / "content")
    state, settings = await serve_sim(aiohttp_server, db_url, content_dir, clock)
    seed(state, (*STAFF, "mia"), CHAT_IDS)
    return MediaWorld(state, settings, content_dir, clock)


async def media_rows(engine: AsyncEngine) -> dict[str, Any]:
    return {key: row for (kind, key), row in (await synced_rows(engine)).items() if kind == MEDIA}


async def test_first_sync_uploads_each_file_once_and_records_it(world: MediaWorld, engine: AsyncEngine) -> None:
    assert await world.sync() == 0, world.output
    assert sorted(world.uploads_since(0)) == ["cover.png", "menu.pdf", "mini.jpg"]
    types = {c.body["media"]["filename"]: c.query["type"] for c in world.state.calls_to("media/upload") if c.body}
    assert types == {"cover.png": "image", "mini.jpg": "image", "menu.pdf": "file"}  # a cover is an image
    recorded = await media_rows(engine)
    assert set(recorded) == {"media/cover.png", "media/mini.jpg", "media/menu.pdf"}
    for key, row in recorded.items():
        item = world.state.media[row.remote_id]
        assert item.filename == Path(key).name
        assert row.data["created_at"] == int(START.timestamp())
        assert len(row.data["sha256"]) == 64 and row.data["type"] == item.type
    assert "create     media           media/cover.png" in world.output and "failed: 0" in world.output


async def test_second_sync_uploads_nothing(world: MediaWorld) -> None:
    assert await world.sync() == 0
    world.clock.advance(HALF_LIFE - timedelta(minutes=1))
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.state.calls[mark:] == [] and "nothing to do" in world.output
    assert "unchanged  media           media/menu.pdf" in world.output


async def test_media_older_than_two_and_a_half_days_is_uploaded_again(world: MediaWorld, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    before = await media_rows(engine)
    world.clock.advance(HALF_LIFE)
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert sorted(world.uploads_since(mark)) == ["cover.png", "menu.pdf", "mini.jpg"]
    assert "refresh    media           media/cover.png  (expiring)" in world.output
    after = await media_rows(engine)
    for key, row in after.items():
        assert row.remote_id != before[key].remote_id
        assert row.data["created_at"] == int((START + HALF_LIFE).timestamp())
    mark = len(world.state.calls)
    assert await world.sync() == 0 and world.state.calls[mark:] == []


async def test_a_changed_file_is_uploaded_again_alone(world: MediaWorld, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    before = await media_rows(engine)
    (world.content_dir / "media" / "cover.png").write_bytes(png("cover v2"))
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.uploads_since(mark) == ["cover.png"]
    assert "replace    media           media/cover.png  (sha256)" in world.output
    after = await media_rows(engine)
    assert after["media/cover.png"].remote_id != before["media/cover.png"].remote_id
    assert after["media/cover.png"].data["sha256"] != before["media/cover.png"].data["sha256"]
    assert after["media/menu.pdf"].remote_id == before["media/menu.pdf"].remote_id


async def test_a_failed_upload_is_reported_and_retried_next_time(world: MediaWorld, engine: AsyncEngine) -> None:
    world.state.inject_error("media/upload", 40005, "invalid file type")
    assert await world.sync() == 1
    assert "error      media           media/cover.png: media/upload: errcode=40005" in world.output
    assert set(await media_rows(engine)) == {"media/mini.jpg", "media/menu.pdf"}
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.uploads_since(mark) == ["cover.png"]


async def test_dry_run_lists_uploads_without_calling(world: MediaWorld, engine: AsyncEngine) -> None:
    assert await world.sync(dry_run=True) == 0
    assert world.state.calls == [] and await media_rows(engine) == {}
    assert "create     media           media/mini.jpg" in world.output


async def test_refresh_media_uploads_only_what_is_due(world: MediaWorld, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    db = make_engine(world.settings.database)
    sessions = sessionmaker(db)
    store = RecordStore(sessions, world.clock)
    try:
        async with aiohttp.ClientSession() as http:
            client = WeComClient(http, world.settings.wecom, DbTokenStore(sessions, world.clock), world.clock)
            assert await refresh_media(world.settings, store, client, world.clock) == 0
            world.clock.advance(HALF_LIFE)
            mark = len(world.state.calls)
            assert await refresh_media(world.settings, store, client, world.clock) == 3
            assert sorted(world.uploads_since(mark)) == ["cover.png", "menu.pdf", "mini.jpg"]
            assert await refresh_media(world.settings, store, client, world.clock) == 0
    finally:
        await db.dispose()


# --- the server side: a welcome carries the uploaded media id, and the refresher ------------------


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=7)
    yield rig
    await rig.close()


async def test_a_welcome_after_sync_carries_the_real_media_id(rig: Rig, clock: FrozenClock) -> None:
    out = io.StringIO()
    assert await sync_command(rig.services.settings, False, out, clock=clock) == 0, out.getvalue()
    async with rig.services.sessions() as s:
        cover = (await all_remote_ids(s, MEDIA))["media/gift_29_cover.png"]
    assert rig.state.media[cover].type == "image"
    for _ in range(8):
        await rig.sim.add_friend("lulu", state="pkgcard")
    await rig.drain()
    sent = rig.state.calls_to("externalcontact/send_welcome_msg")
    assert sent and all(c.errcode == 0 for c in sent)
    covers = [
        a["miniprogram"]["pic_media_id"]
        for c in sent
        for a in (c.body or {}).get("attachments", [])
        if a["msgtype"] == "miniprogram"
    ]
    assert covers and set(covers) == {cover}


async def test_the_refresher_keeps_media_fresh_inside_the_server(rig: Rig, clock: FrozenClock) -> None:
    refresher = MediaRefresher(rig.services, first_delay=3600)
    assert await refresher.run_once() == 1  # nothing recorded yet: the welcome cover is uploaded
    assert await refresher.run_once() == 0
    clock.advance(HALF_LIFE)
    assert await refresher.run_once() == 1
    assert [c.errcode for c in rig.state.calls_to("media/upload")] == [0, 0]
    refresher.start()  # the loop waits first_delay before its first run
    await refresher.stop()
    assert len(rig.state.calls_to("media/upload")) == 2


async def test_the_refresher_skips_a_run_while_another_process_refreshes(rig: Rig, clock: FrozenClock) -> None:
    """Every worker of ``serve --workers N`` runs the refresher: on PostgreSQL one at a time uploads."""
    from bot.db.only_one import only_one

    engine = rig.services.engine
    assert engine is not None
    refresher = MediaRefresher(rig.services, first_delay=3600)
    async with only_one(engine, "media-refresh") as mine:  # stands in for another process's run
        assert mine
        expected = 0 if engine.dialect.name == "postgresql" else 1  # SQLite: one process, no lock
        assert await refresher.run_once() == expected
    assert await refresher.run_once() == 1 - expected
    assert await refresher.run_once() == 0
