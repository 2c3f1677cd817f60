"""WeComClient / MpClient against a small fake platform on a loopback port (pytest-aiohttp).

The fake issues tokens, remembers which are valid, records every request, and answers each API from a
per-API script of documented errcodes (then ``errcode: 0``). Time is a FrozenClock: back-off sleeps
advance it instead of waiting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.clock import FrozenClock
from bot.config import OfficialAccountConfig, Secret, WeComConfig
from bot.platform import (
    ApiError,
    CredentialsRejected,
    DbTokenStore,
    MpClient,
    OutOfWindow,
    PlatformError,
    Retryable,
    SendQuotaExceeded,
    TokenInvalid,
    TransportError,
    WeComClient,
    WelcomeBeingDistributed,
    WelcomeCodeUsed,
    error_for,
)
from tests.kernel.fake_platform import START, FakePlatform, sqlite_token_store

CORP_SECRET = "corp-secret-DO-NOT-LEAK-123"
APP_SECRET = "app-secret-DO-NOT-LEAK-456"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def store(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[DbTokenStore]:
    async with sqlite_token_store(tmp_path / "tokens.db", clock) as store:
        yield store


@pytest.fixture
async def fake(aiohttp_server: Callable[[web.Application], Awaitable[Any]]) -> FakePlatform:
    platform = FakePlatform()
    server = await aiohttp_server(platform.app())
    platform.base_url = str(server.make_url("/"))
    return platform


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def wecom(http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock) -> WeComClient:
    cfg = WeComConfig(corp_id="wwcorp", agent_id=1000002, secret=Secret(CORP_SECRET), api_base_url=fake.base_url)
    return WeComClient(http, cfg, store, clock, rng=random.Random(7))


def mp(http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock) -> MpClient:
    cfg = OfficialAccountConfig(app_id="wxapp", app_secret=Secret(APP_SECRET), api_base_url=fake.base_url)
    return MpClient(http, cfg, store, clock, rng=random.Random(7))


async def test_token_is_cached_and_reused(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    for i in range(5):
        await client.get_external_contact(f"wm{i}")
    [fetch] = fake.calls("gettoken")
    assert fetch.query == {"corpid": "wwcorp", "corpsecret": CORP_SECRET}
    calls = fake.calls("externalcontact/get")
    assert [c.query["external_userid"] for c in calls] == [f"wm{i}" for i in range(5)]
    assert {c.query["access_token"] for c in calls} == {"TOKEN-0001-SECRETLOOKING"}


async def test_replicas_share_the_stored_token(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    first, second = wecom(http, fake, store, clock), wecom(http, fake, store, clock)
    await first.remind_groupmsg_send("msg1")
    await second.remind_groupmsg_send("msg2")
    assert len(fake.calls("gettoken")) == 1


async def test_concurrent_first_calls_fetch_one_token(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    await asyncio.gather(*(client.groupchat_get(f"wr{i}") for i in range(10)))
    assert len(fake.calls("gettoken")) == 1
    assert len(fake.calls("externalcontact/groupchat/get")) == 10


async def test_token_refreshed_a_margin_before_expiry(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    await client.get_join_way("cfg")
    clock.advance(7200 - 300 - 1)
    await client.get_join_way("cfg")
    assert len(fake.calls("gettoken")) == 1
    clock.advance(2)
    await client.get_join_way("cfg")
    assert len(fake.calls("gettoken")) == 2


@pytest.mark.parametrize("errcode", [42001, 40014, 40001])
async def test_token_invalid_refreshes_and_retries_once(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock, errcode: int
) -> None:
    client = wecom(http, fake, store, clock)
    fake.scripts["externalcontact/mark_tag"].append({"errcode": errcode, "errmsg": "access_token expired"})
    result = await client.mark_tag("zhangsan", "wmX", add_tag=["et1"])
    assert result["errcode"] == 0
    first, second = fake.calls("externalcontact/mark_tag")
    assert first.query["access_token"] != second.query["access_token"]
    assert len(fake.calls("gettoken")) == 2


async def test_second_token_failure_raises(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    fake.scripts["externalcontact/mark_tag"] += [{"errcode": 42001, "errmsg": "expired"}] * 2
    with pytest.raises(TokenInvalid) as info:
        await client.mark_tag("zhangsan", "wmX", remove_tag=["et1"])
    assert info.value.errcode == 42001 and not info.value.final
    assert len(fake.calls("externalcontact/mark_tag")) == 2


async def test_busy_backs_off_then_succeeds(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    fake.scripts["externalcontact/add_corp_tag"] += [{"errcode": 45009}, {"errcode": -1}]
    start = clock.now()
    await client.add_corp_tag([{"name": "包裹卡"}], group_name="渠道")
    assert len(fake.calls("externalcontact/add_corp_tag")) == 3
    waited = (clock.now() - start).total_seconds()
    assert 0.25 + 0.5 <= waited < 0.75 + 1.5  # 0.5 s then 1 s, each jittered by x[0.5, 1.5)


async def test_busy_gives_up_after_three_tries(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    fake.scripts["kf/sync_msg"] += [{"errcode": 45033, "errmsg": "concurrency"}] * 3
    with pytest.raises(Retryable):
        await client.kf_sync_msg("wkKF", token="cb-token")
    assert len(fake.calls("kf/sync_msg")) == 3


async def test_welcome_code_used_is_final_and_not_retried(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    fake.scripts["externalcontact/send_welcome_msg"].append({"errcode": 41051, "errmsg": "started chatting"})
    with pytest.raises(WelcomeCodeUsed) as info:
        await client.send_welcome_msg("WELCOMECODE", "你好")
    assert info.value.final
    assert len(fake.calls("externalcontact/send_welcome_msg")) == 1


@pytest.mark.parametrize(
    ("errcode", "cls", "final"),
    [
        (40001, TokenInvalid, False),
        (40014, TokenInvalid, False),
        (42001, TokenInvalid, False),
        (-1, Retryable, False),
        (45009, Retryable, False),
        (45033, Retryable, False),
        (41051, WelcomeCodeUsed, True),
        (41096, WelcomeBeingDistributed, False),
        (45015, OutOfWindow, True),
        (45047, SendQuotaExceeded, True),
        (40003, ApiError, True),
    ],
)
def test_error_for_picks_type_by_errcode(errcode: int, cls: type[PlatformError], final: bool) -> None:
    exc = error_for("message/custom/send", errcode, "msg")
    assert type(exc) is cls and exc.final is final and exc.errcode == errcode


def test_error_text_is_redacted() -> None:
    exc = error_for(
        "message/send?access_token=abc",
        40003,
        'bad, see https://api.example/cgi-bin/x?access_token=TOK123&e=1 access_token=TOK456 "secret": "S1"',
    )
    for text in (str(exc), repr(exc), *map(str, exc.args)):
        assert "TOK123" not in text and "TOK456" not in text and "S1" not in text and "abc" not in text
    assert "https://api.example/cgi-bin/x" in str(exc)


async def test_secrets_and_tokens_never_in_exceptions(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    fake.token_errcode = 40001
    client = wecom(http, fake, store, clock)
    with pytest.raises(CredentialsRejected) as rejected:
        await client.remind_groupmsg_send("m")
    assert rejected.value.final
    fake.token_errcode = 0
    token_echo = web.json_response({"errcode": 40003, "errmsg": "x"})
    fake.scripts["message/send"].append(token_echo)
    with pytest.raises(ApiError) as api_error:
        await client.message_send("text", {"content": "hi"}, touser=["a"])
    token = fake.calls("message/send")[0].query["access_token"]
    for exc in (rejected.value, api_error.value):
        for text in (str(exc), repr(exc)):
            assert CORP_SECRET not in text and token not in text and "access_token=" not in text


async def test_errmsg_echoing_the_token_is_masked(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    await client.remind_groupmsg_send("warm-up")
    token = fake.calls("externalcontact/remind_groupmsg_send")[0].query["access_token"]
    fake.scripts["externalcontact/remind_groupmsg_send"].append({"errcode": 40003, "errmsg": f"bad {token}"})
    with pytest.raises(ApiError) as info:
        await client.remind_groupmsg_send("m")
    assert token not in str(info.value) and token not in repr(info.value)


@pytest.mark.parametrize(
    "response",
    [web.Response(status=502, text="bad gateway"), web.Response(text="<html>not json</html>")],
)
async def test_transport_failures(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock, response: web.Response
) -> None:
    client = wecom(http, fake, store, clock)
    fake.scripts["externalcontact/get_groupmsg_task"].append(response)
    with pytest.raises(TransportError) as info:
        await client.get_groupmsg_task("msg")
    assert info.value.errcode is None and not info.value.final
    assert "access_token" not in str(info.value)


async def test_connection_error_is_transport_error(
    http: aiohttp.ClientSession, store: DbTokenStore, clock: FrozenClock
) -> None:
    dead = FakePlatform(base_url="http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(TransportError) as info:
        await wecom(http, dead, store, clock).remind_groupmsg_send("m")
    assert CORP_SECRET not in str(info.value) and "corpsecret" not in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None


async def test_request_shapes(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    link = {"msgtype": "link", "link": {"title": "t", "url": "https://example.com"}}
    await client.send_welcome_msg("WC", "欢迎", [link])
    await client.message_send("text", {"content": "hi"}, touser=["a", "b"])
    await client.kf_send_msg("wmCustomer", "wkKF", "text", {"content": "在的"})
    welcome = fake.calls("externalcontact/send_welcome_msg")[0]
    assert welcome.body == {"welcome_code": "WC", "text": {"content": "欢迎"}, "attachments": [link]}
    assert "欢迎".encode() in welcome.raw  # UTF-8, not \\u escapes (OA errcode 40033)
    assert fake.calls("message/send")[0].body == {
        "touser": "a|b",
        "agentid": 1000002,
        "msgtype": "text",
        "text": {"content": "hi"},
    }
    assert fake.calls("kf/send_msg")[0].body == {
        "touser": "wmCustomer",
        "open_kfid": "wkKF",
        "msgtype": "text",
        "text": {"content": "在的"},
    }


async def test_channel_code_requests(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client = wecom(http, fake, store, clock)
    await client.add_contact_way(1, 2, user=["zhangsan"], state="ch_poster_01")
    await client.add_join_way(2, ["wr1", "wr2"], state="grp_01", auto_create_room=1)
    assert fake.calls("externalcontact/add_contact_way")[0].body == {
        "type": 1,
        "scene": 2,
        "skip_verify": True,
        "state": "ch_poster_01",
        "user": ["zhangsan"],
    }
    assert fake.calls("externalcontact/groupchat/add_join_way")[0].body == {
        "scene": 2,
        "auto_create_room": 1,
        "chat_id_list": ["wr1", "wr2"],
        "state": "grp_01",
    }


async def test_arguments_are_checked_before_any_call(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    client, oa = wecom(http, fake, store, clock), mp(http, fake, store, clock)
    attachment = {"msgtype": "image", "image": {"media_id": "m"}}
    with pytest.raises(ValueError):
        await client.send_welcome_msg("WC", "hi", [attachment] * 10)
    with pytest.raises(ValueError):
        await client.mark_tag("u", "wm")
    with pytest.raises(ValueError):
        await client.add_join_way(2, [f"wr{i}" for i in range(6)])
    with pytest.raises(ValueError):
        await client.add_contact_way(1, 2, user=["u"], state="x" * 31)
    with pytest.raises(ValueError):
        await client.add_msg_template("group", text="hi")
    for scene in ("", "s" * 65):
        with pytest.raises(ValueError):
            await oa.qrcode_create_limit_str(scene)
    with pytest.raises(ValueError):
        await oa.batch_tagging([f"o{i}" for i in range(51)], 100)
    assert fake.requests == []


async def test_mp_requests(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    oa = mp(http, fake, store, clock)
    await oa.qrcode_create_limit_str("ch_poster_01")
    await oa.user_info("oOPENID")
    await oa.custom_send("oOPENID", "text", {"content": "签到成功"})
    [fetch] = fake.calls("stable_token")
    assert fetch.body == {
        "grant_type": "client_credential",
        "appid": "wxapp",
        "secret": APP_SECRET,
        "force_refresh": False,
    }
    assert fake.calls("qrcode/create")[0].body == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "ch_poster_01"}},
    }
    assert fake.calls("user/info")[0].query["openid"] == "oOPENID"
    assert fake.calls("message/custom/send")[0].body == {
        "touser": "oOPENID",
        "msgtype": "text",
        "text": {"content": "签到成功"},
    }


async def test_mp_window_closed_is_final(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    oa = mp(http, fake, store, clock)
    fake.scripts["message/custom/send"].append({"errcode": 45015, "errmsg": "response out of time limit"})
    with pytest.raises(OutOfWindow) as info:
        await oa.custom_send("oOPENID", "text", {"content": "hi"})
    assert info.value.final
    assert len(fake.calls("message/custom/send")) == 1


async def test_mp_same_bad_token_forces_refresh(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    oa = mp(http, fake, store, clock)
    await oa.get_tags()
    fake.scripts["tags/get"].append({"errcode": 40001, "errmsg": "invalid credential, not latest"})
    await oa.get_tags()
    forced = [r.body["force_refresh"] for r in fake.calls("stable_token")]
    assert forced == [False, False, True]
    first, failed, retried = fake.calls("tags/get")
    assert first.query["access_token"] == failed.query["access_token"] != retried.query["access_token"]


async def test_mp_other_replica_rereads_store_instead_of_fetching(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    a, b = mp(http, fake, store, clock), mp(http, fake, store, clock)
    await a.get_tags()
    await b.get_tags()
    fake.scripts["tags/get"].append({"errcode": 40001, "errmsg": "not latest"})
    await a.get_tags()  # a forces a new token and stores it
    await b.get_tags()  # b's cached token is rejected; it finds a's token in the store
    assert [r.body["force_refresh"] for r in fake.calls("stable_token")] == [False, False, True]


async def test_mp_force_refresh_spacing(
    http: aiohttp.ClientSession, fake: FakePlatform, store: DbTokenStore, clock: FrozenClock
) -> None:
    oa = mp(http, fake, store, clock)
    fake.scripts["tags/get"].append({"errcode": 40001, "errmsg": "not latest"})
    await oa.get_tags()
    clock.advance(10)
    fake.scripts["tags/get"].append({"errcode": 40001, "errmsg": "not latest"})
    with pytest.raises(TokenInvalid):
        await oa.get_tags()  # the platform hands back the rejected token; forcing again is too soon
    assert [r.body["force_refresh"] for r in fake.calls("stable_token")].count(True) == 1
    clock.advance(21)
    await oa.get_tags()
    assert [r.body["force_refresh"] for r in fake.calls("stable_token")].count(True) == 2
