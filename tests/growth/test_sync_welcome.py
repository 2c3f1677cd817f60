"""Group welcome templates
(docs/platform.md#group-welcome-templates) in ``content sync``: one per ``wecom_group`` channel, created with
``notify: 1``, edited in place with ``notify: 0`` when the welcome changes, never touched otherwise, and
left on WeCom (``stale``) when the channel goes. Assertions are on what the simulator received."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import segno
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import FrozenClock
from bot.config import Settings
from bot.simulator import SimState
from handlers.content import load_content
from handlers.growth.sync import GROUP_WELCOME, Op, plan_sync, sync_command
from handlers.growth.sync.group_welcome import template_text
from tests.growth.helpers import CHANNELS, CHAT_IDS, STAFF, ServerFactory, seed, serve_sim, synced_rows, write_content

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
ADD = "externalcontact/group_welcome_template/add"
EDIT = "externalcontact/group_welcome_template/edit"
GROUP_CHANNELS = CHANNELS.replace(
    'tags = ["渠道/粉丝群"]\nwelcome = "hi"', 'tags = ["渠道/粉丝群"]\nwelcome = "group_hi"'
)

MESSAGES = """
[fallbacks]
nickname = "朋友"

[[messages]]
id = "hi"
text = "你好{nickname}"

[[messages]]
id = "group_hi"
text = "欢迎{nickname}入群！{{群规}}见公告"

[[messages.attachments]]
msgtype = "link"
title = "本周秒杀"
desc = "会员日"
url = "https://shop.example.com/weekly"
"""

IMAGE_MESSAGES = """
[fallbacks]
nickname = "朋友"

[[messages]]
id = "hi"
text = "你好{nickname}"

[[messages]]
id = "group_hi"
text = "欢迎{nickname}"

[[messages.attachments]]
msgtype = "image"
path = "media/rules.png"
"""


def png(payload: str) -> bytes:
    out = io.BytesIO()
    segno.make(payload).save(out, kind="png", scale=4)
    return out.getvalue()


def write_group_content(root: Path, messages: str = MESSAGES) -> Path:
    write_content(root, channels=GROUP_CHANNELS)
    (root / "messages.toml").write_text(messages, encoding="utf-8")
    (root / "media").mkdir(exist_ok=True)
    (root / "media" / "rules.png").write_bytes(png("rules v1"))
    return root


class World:
    def __init__(self, state: SimState, settings: Settings, content_dir: Path, clock: FrozenClock) -> None:
        self.state, self.settings, self.content_dir, self.clock = state, settings, content_dir, clock
        self.output = ""

    async def sync(self, dry_run: bool = False) -> int:
        out = io.StringIO()
        code = await sync_command(self.settings, dry_run, out, clock=self.clock)
        self.output = out.getvalue()
        return code

    def apis_since(self, mark: int) -> list[str]:
        """The calls since ``mark``, except token fetches (a token lives 2 hours; the clock jumps days)."""
        return [c.api for c in self.state.calls[mark:] if c.api != "gettoken"]

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.content_dir / name
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def make_world(aiohttp_server: ServerFactory, db_url: str, content_dir: Path) -> World:
    clock = FrozenClock(START)
    state, settings = await serve_sim(aiohttp_server, db_url, content_dir, clock)
    seed(state, (*STAFF, "mia"), CHAT_IDS)
    return World(state, settings, content_dir, clock)


@pytest.fixture
async def world(aiohttp_server: ServerFactory, db_url: str, tmp_path: Path) -> World:
    return await make_world(aiohttp_server, db_url, write_group_content(tmp_path / "content"))


def test_nickname_becomes_the_wecom_placeholder() -> None:
    assert template_text("欢迎{nickname}！{{群规}}") == "欢迎%NICKNAME%！{群规}"
    assert template_text("") == ""


async def test_first_sync_creates_the_template_with_the_exact_body(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0, world.output
    (call,) = world.state.calls_to(ADD)
    assert call.body == {
        "text": {"content": "欢迎%NICKNAME%入群！{群规}见公告"},
        "link": {"title": "本周秒杀", "desc": "会员日", "url": "https://shop.example.com/weekly"},
        "notify": 1,
    }
    template_id = call.response["template_id"]
    recorded = (await synced_rows(engine))[(GROUP_WELCOME, "fans")]
    assert recorded.remote_id == template_id and template_id in world.state.welcome_templates
    assert "create     group_welcome_template fans" in world.output and "failed: 0" in world.output
    assert len(world.state.join_ways) == 1  # the 加入群聊 code is synced as before


async def test_second_sync_makes_no_call(world: World) -> None:
    assert await world.sync() == 0
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.apis_since(mark) == [] and "nothing to do" in world.output
    assert "unchanged  group_welcome_template fans" in world.output


async def test_a_changed_welcome_text_is_exactly_one_edit(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    template_id = (await synced_rows(engine))[(GROUP_WELCOME, "fans")].remote_id
    world.edit("messages.toml", "见公告", "请看群公告")
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.apis_since(mark) == [EDIT]
    call = world.state.last_call(EDIT)
    assert call.body is not None and call.body["template_id"] == template_id and call.body["notify"] == 0
    assert call.body["text"] == {"content": "欢迎%NICKNAME%入群！{群规}请看群公告"}
    assert world.state.welcome_templates[template_id].content["link"]["title"] == "本周秒杀"
    assert "update     group_welcome_template fans  (text)" in world.output
    assert (await synced_rows(engine))[(GROUP_WELCOME, "fans")].remote_id == template_id
    mark = len(world.state.calls)
    assert await world.sync() == 0 and world.apis_since(mark) == []


async def test_dry_run_plans_create_and_edit_and_calls_nothing(world: World, engine: AsyncEngine) -> None:
    assert await world.sync(dry_run=True) == 0
    assert world.state.calls == [] and await synced_rows(engine) == {}
    assert "create     group_welcome_template fans" in world.output
    assert await world.sync() == 0
    world.edit("messages.toml", 'title = "本周秒杀"', 'title = "下周秒杀"')
    mark = len(world.state.calls)
    assert await world.sync(dry_run=True) == 0
    assert world.apis_since(mark) == []
    assert "update     group_welcome_template fans  (link)" in world.output


async def test_a_removed_channel_leaves_its_template_stale(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    world.edit("channels.toml", 'welcome = "group_hi"', "")
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.apis_since(mark) == [] and len(world.state.welcome_templates) == 1
    assert "stale      group_welcome_template fans" in world.output
    assert (GROUP_WELCOME, "fans") in await synced_rows(engine)


async def test_an_image_template_uses_the_uploaded_media_id_and_survives_refreshes(
    aiohttp_server: ServerFactory, db_url: str, tmp_path: Path, engine: AsyncEngine
) -> None:
    w = await make_world(aiohttp_server, db_url, write_group_content(tmp_path / "content", IMAGE_MESSAGES))
    assert await w.sync() == 0, w.output
    media_id = (await synced_rows(engine))[("media", "media/rules.png")].remote_id
    assert w.state.last_call(ADD).body == {
        "text": {"content": "欢迎%NICKNAME%"},
        "image": {"media_id": media_id},
        "notify": 1,
    }
    w.clock.advance(timedelta(days=2.5))  # the media_id is uploaded again; the template keeps its copy
    mark = len(w.state.calls)
    assert await w.sync() == 0, w.output
    assert w.apis_since(mark) == ["media/upload"]
    (w.content_dir / "media" / "rules.png").write_bytes(png("rules v2"))  # a new picture: one edit
    mark = len(w.state.calls)
    assert await w.sync() == 0, w.output
    assert w.apis_since(mark) == ["media/upload", EDIT]
    new_id = (await synced_rows(engine))[("media", "media/rules.png")].remote_id
    assert w.state.last_call(EDIT).body["image"] == {"media_id": new_id}  # type: ignore[index]
    assert "update     group_welcome_template fans  (media)" in w.output


async def test_a_failed_upload_holds_the_template_back(world: World, tmp_path: Path) -> None:
    w = world
    w.edit(
        "messages.toml",
        'msgtype = "link"\ntitle = "本周秒杀"\ndesc = "会员日"\nurl = "https://shop.example.com/weekly"',
        'msgtype = "image"\npath = "media/rules.png"',
    )
    w.state.inject_error("media/upload", 40005, "invalid file type")
    assert await w.sync() == 1
    assert w.state.calls_to(ADD) == [] and "media/rules.png is not uploaded" in w.output
    assert await w.sync() == 0, w.output  # the next run uploads, then creates
    assert len(w.state.calls_to(ADD)) == 1


def test_plan_from_records_alone(tmp_path: Path) -> None:
    content = load_content(write_group_content(tmp_path / "content"))
    (action,) = plan_sync(content, []).of(GROUP_WELCOME)
    assert action.op is Op.CREATE and action.key == "fans"
    assert action.desired is not None and "media" not in action.desired.fields
