"""``WeComClient.upload_media`` (上传临时素材, multipart) against the simulator: the request shape, the
answer, and the shared token/errcode handling (a refreshed token re-sends a fresh multipart body)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.clock import FrozenClock
from bot.platform import ApiError, Retryable, WeComClient
from bot.simulator import SimState
from tests.kernel.fake_platform import START, png_bytes, simulator_wecom_client


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def state(clock: FrozenClock) -> SimState:
    return SimState(clock=clock, seed=3)


@pytest.fixture
async def client(
    aiohttp_server: Callable[[web.Application], Awaitable[Any]], state: SimState, clock: FrozenClock, tmp_path: Path
) -> AsyncIterator[WeComClient]:
    async with simulator_wecom_client(aiohttp_server, state, clock, tmp_path / "tokens.db") as wecom:
        yield wecom


async def test_upload_sends_multipart_media_and_returns_id_and_time(client: WeComClient, state: SimState) -> None:
    data = png_bytes()
    media_id, created_at = await client.upload_media("image", "cover.png", data)
    assert created_at == int(START.timestamp())
    item = state.media[media_id]
    assert (item.type, item.filename, item.size) == ("image", "cover.png", len(data))
    call = state.last_call("media/upload")
    assert call.query == {"type": "image"}
    assert call.body == {
        "media": {"filename": "cover.png", "filelength": len(data), "content_type": "application/octet-stream"}
    }
    assert call.response["created_at"] == str(created_at)  # WeCom answers a string; the client gives an int


async def test_an_expired_token_is_refreshed_and_the_form_sent_again(client: WeComClient, state: SimState) -> None:
    state.inject_error("media/upload", 42001, "access_token expired")
    media_id, _ = await client.upload_media("file", "menu.pdf", b"%PDF-1.4 menu")
    assert [c.errcode for c in state.calls_to("media/upload")] == [42001, 0]
    assert state.media[media_id].filename == "menu.pdf"
    second = state.calls_to("media/upload")[1]
    assert second.body is not None and second.body["media"]["filelength"] == len(b"%PDF-1.4 menu")


async def test_busy_is_retried_with_a_fresh_body(client: WeComClient, state: SimState) -> None:
    state.inject_error("media/upload", -1, "system busy")
    media_id, _ = await client.upload_media("image", "a.png", png_bytes())
    assert [c.errcode for c in state.calls_to("media/upload")] == [-1, 0] and media_id in state.media
    state.inject_error("media/upload", -1, "system busy", times=3)
    with pytest.raises(Retryable):
        await client.upload_media("image", "a.png", png_bytes())


async def test_platform_refusals_are_typed_errors(client: WeComClient, state: SimState) -> None:
    with pytest.raises(ApiError) as wrong_format:
        await client.upload_media("image", "a.png", b"GIF89a not allowed")
    assert wrong_format.value.errcode == 40005
    with pytest.raises(ApiError) as not_mp4:
        await client.upload_media("video", "a.mp4", b"definitely not a video")
    assert not_mp4.value.errcode == 40005
    assert state.media == {}


async def test_arguments_are_checked_before_any_call(client: WeComClient, state: SimState) -> None:
    with pytest.raises(ValueError, match="media type"):
        await client.upload_media("thumb", "a.jpg", b"\xff\xd8\xff" * 4)
    with pytest.raises(ValueError, match="6 bytes to 10 MB"):
        await client.upload_media("image", "a.png", b"\x89PNG")
    with pytest.raises(ValueError, match="6 bytes to 2 MB"):
        await client.upload_media("voice", "a.amr", b"#!AMR" + b"0" * (2 << 20))
    assert state.calls_to("media/upload") == []
