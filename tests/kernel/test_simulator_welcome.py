"""``WeComClient``'s group welcome template methods
(docs/platform.md#group-welcome-templates) against the simulated endpoints: the request
shapes, and the documented limits (≤ 100 templates, 3000-byte text, one attachment, the app's own
templates only, media ids from ``media/upload``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.clock import FrozenClock
from bot.platform import ApiError, WeComClient
from bot.simulator import SimState
from bot.simulator.wecom_welcome import MAX_TEMPLATES, add_console_template
from tests.kernel.fake_platform import START, png_bytes, simulator_wecom_client

LINK = {"link": {"title": "本周秒杀", "url": "https://shop.example.com/weekly"}}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def state(clock: FrozenClock) -> SimState:
    return SimState(clock=clock, seed=5)


@pytest.fixture
async def client(
    aiohttp_server: Callable[[web.Application], Awaitable[Any]], state: SimState, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[WeComClient]:
    async with simulator_wecom_client(aiohttp_server, state, clock, tmp_path / "tokens.db") as wecom:
        yield wecom


async def errcode_of(call: Awaitable[object]) -> int:
    with pytest.raises(ApiError) as err:
        await call
    return err.value.errcode


async def test_add_edit_get_del_round_trip(client: WeComClient, state: SimState) -> None:
    template_id = await client.add_group_welcome_template("欢迎%NICKNAME%", LINK)
    body = state.last_call("externalcontact/group_welcome_template/add").body
    assert body == {"text": {"content": "欢迎%NICKNAME%"}, **LINK, "notify": 1}
    await client.edit_group_welcome_template(template_id, "你好%NICKNAME%")
    edit = state.last_call("externalcontact/group_welcome_template/edit").body
    assert edit == {"template_id": template_id, "text": {"content": "你好%NICKNAME%"}, "notify": 0}
    got = await client.get_group_welcome_template(template_id)
    assert got["text"] == {"content": "你好%NICKNAME%"} and "link" not in got
    await client.del_group_welcome_template(template_id)
    assert state.welcome_templates == {}


async def test_the_library_holds_at_most_100_templates(client: WeComClient, state: SimState) -> None:
    for i in range(MAX_TEMPLATES):
        await client.add_group_welcome_template(f"欢迎 {i}")
    with pytest.raises(ApiError, match="exceeds 100") as err:
        await client.add_group_welcome_template("one too many")
    assert err.value.errcode == 40058 and err.value.final
    assert len(state.welcome_templates) == MAX_TEMPLATES


async def test_only_the_apps_own_templates_can_change(client: WeComClient, state: SimState) -> None:
    console = add_console_template(state, "管理后台建的欢迎语")
    assert (await client.get_group_welcome_template(console.template_id))["text"] == {"content": "管理后台建的欢迎语"}
    assert await errcode_of(client.edit_group_welcome_template(console.template_id, "x")) == 48002
    assert await errcode_of(client.del_group_welcome_template(console.template_id)) == 48002
    assert await errcode_of(client.edit_group_welcome_template("msgUNKNOWN", "x")) == 40058
    assert state.welcome_templates[console.template_id].content == {"text": {"content": "管理后台建的欢迎语"}}


async def test_the_simulator_checks_text_and_attachment_shapes(client: WeComClient) -> None:
    call = client.call
    api = "externalcontact/group_welcome_template/add"
    assert await errcode_of(call(api, {"text": {"content": "字" * 1001}})) == 45002  # 3003 bytes
    assert await errcode_of(call(api, {"text": {"content": "hi"}, **LINK, "image": {"pic_url": "https://x"}})) == 40058
    assert await errcode_of(call(api, {"link": {"title": "t" * 129, "url": "https://x"}})) == 40058
    assert await errcode_of(call(api, {"miniprogram": {"title": "t", "appid": "wx1"}})) == 40058  # page, cover
    assert await errcode_of(call(api, {"notify": 1})) == 40058  # nothing to send
    assert await errcode_of(call(api, {"image": {"media_id": "never-uploaded"}})) == 40007


async def test_media_ids_must_come_from_media_upload(client: WeComClient, state: SimState) -> None:
    media_id, _ = await client.upload_media("image", "rules.png", png_bytes())
    await client.add_group_welcome_template(None, {"image": {"media_id": media_id}})
    file_id, _ = await client.upload_media("file", "menu.pdf", b"%PDF-1.4 menu")
    api = "externalcontact/group_welcome_template/add"
    assert await errcode_of(client.call(api, {"image": {"media_id": file_id}})) == 40007  # a file, not an image


async def test_the_client_refuses_what_wecom_would(client: WeComClient, state: SimState) -> None:
    with pytest.raises(ValueError, match="text or an attachment"):
        await client.add_group_welcome_template()
    with pytest.raises(ValueError, match="3000 bytes"):
        await client.add_group_welcome_template("字" * 1001)
    with pytest.raises(ValueError, match="exactly one"):
        await client.add_group_welcome_template("hi", {**LINK, "image": {"pic_url": "https://x"}})
    with pytest.raises(ValueError, match="64 bytes"):
        await client.add_group_welcome_template(None, {"miniprogram": {"title": "t" * 65}})
    assert state.calls == []
