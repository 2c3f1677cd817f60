"""The callback pusher and scripted journeys, checked by a tiny receiver that verifies like the bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.clock import FrozenClock
from bot.event_parser import from_fields
from bot.events import (
    Followed,
    FriendAdded,
    FriendLost,
    GroupMembersJoined,
    GroupMembersLeft,
    KfMessagesPending,
    MenuClicked,
    Scanned,
    TextReceived,
    Unfollowed,
)
from bot.simulator import CallbackPusher, SimState, Simulator, make_sim_app, mp_target, wecom_target
from bot.simulator.pusher import DEFAULT_RETRIES, DEFAULT_TIMEOUT
from bot.wechat import CallbackRejected, EnvelopeCrypto, extract_encrypt, parse_xml, signature

START = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


@dataclass
class Seen:
    query: dict[str, str]
    encrypt: str
    plaintext: str


@dataclass
class Receiver:
    """Verifies signatures and decrypts exactly as the bot's transport must."""

    crypto: EnvelopeCrypto
    token: str
    work: bool
    statuses: list[int] = field(default_factory=list)
    hang: int = 0  # this many first requests never answer (until ``release`` is set)
    reply: str | None = None
    seen: list[Seen] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        try:
            encrypt = extract_encrypt(parse_xml(await request.read()))
            self.crypto.check(q["msg_signature"], q["timestamp"], q["nonce"], encrypt)
            if not self.work:
                assert q["encrypt_type"] == "aes"
                assert q["signature"] == signature(self.token, q["timestamp"], q["nonce"])
            plaintext = self.crypto.decrypt(encrypt)
        except CallbackRejected as exc:
            self.rejected.append(exc.reason)
            return web.Response(status=exc.status)
        self.seen.append(Seen(q, encrypt, plaintext))
        if len(self.seen) <= self.hang:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        body = self.crypto.encrypted_reply(self.reply) if self.reply and status == 200 else ""
        return web.Response(status=status, text=body)

    def events(self, platform: Any) -> list[Any]:
        return [from_fields(platform, parse_xml(s.plaintext)) for s in self.seen]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def state(clock: FrozenClock) -> SimState:
    return SimState(clock=clock, seed=11)


@pytest.fixture
def wecom_rx(state: SimState) -> Receiver:
    a = state.accounts
    return Receiver(EnvelopeCrypto(a.wecom_token, a.wecom_aes_key, a.corp_id, work=True), a.wecom_token, True)


@pytest.fixture
def mp_rx(state: SimState) -> Receiver:
    a = state.accounts
    return Receiver(EnvelopeCrypto(a.mp_token, a.mp_aes_key, a.app_id, work=False), a.mp_token, False)


@pytest.fixture
async def bot_server(aiohttp_server: Any, wecom_rx: Receiver, mp_rx: Receiver) -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_post("/callback/wecom", wecom_rx.handle)
    app.router.add_post("/callback/mp", mp_rx.handle)
    server: TestServer = await aiohttp_server(app)
    yield server
    wecom_rx.release.set()
    mp_rx.release.set()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make_pushers(
    state: SimState, server: TestServer, session: aiohttp.ClientSession, timeout: float = 1.0
) -> tuple[CallbackPusher, CallbackPusher]:
    a = state.accounts
    w = CallbackPusher(
        session, wecom_target(a, str(server.make_url("/callback/wecom"))), clock=state.clock, timeout=timeout
    )
    m = CallbackPusher(session, mp_target(a, str(server.make_url("/callback/mp"))), clock=state.clock, timeout=timeout)
    return w, m


@pytest.fixture
def sim(state: SimState, bot_server: TestServer, session: aiohttp.ClientSession) -> Simulator:
    w, m = make_pushers(state, bot_server, session)
    return Simulator(state, wecom=w, mp=m)


@pytest.fixture
async def api(aiohttp_client: Any, state: SimState) -> TestClient[Any, Any]:
    c: TestClient[Any, Any] = await aiohttp_client(make_sim_app(state))
    return c


async def wecom_token(api: TestClient[Any, Any], state: SimState) -> str:
    q = {"corpid": state.accounts.corp_id, "corpsecret": state.accounts.corp_secret}
    return str((await (await api.get("/wecom/cgi-bin/gettoken", params=q)).json())["access_token"])


# --- pusher --------------------------------------------------------------------------------------


def test_defaults_follow_the_platform() -> None:
    assert (DEFAULT_TIMEOUT, DEFAULT_RETRIES) == (5.0, 3)


async def test_wecom_push_is_signed_and_decryptable(sim: Simulator, wecom_rx: Receiver, state: SimState) -> None:
    added = await sim.add_friend("zhangsan", state="ch_douyin")
    assert added.delivery.ok and added.delivery.tries == 1 and added.delivery.reply is None
    [seen] = wecom_rx.seen
    assert seen.query["timestamp"] == str(int(START.timestamp()))
    assert "<FromUserName><![CDATA[sys]]></FromUserName>" in seen.plaintext
    [event] = wecom_rx.events("wecom")
    assert isinstance(event, FriendAdded)
    assert (event.user_id, event.external_userid, event.state) == ("zhangsan", added.external_userid, "ch_douyin")
    assert event.welcome_code == added.welcome_code and added.welcome_code in state.welcome_codes
    assert event.account == state.accounts.corp_id


async def test_retry_after_non_200_uses_fresh_encryption(sim: Simulator, wecom_rx: Receiver) -> None:
    wecom_rx.statuses = [500, 503]
    added = await sim.add_friend("zhangsan")
    assert added.delivery.ok and added.delivery.tries == 3
    assert [a.status for a in added.delivery.attempts] == [500, 503, 200]
    assert len({s.plaintext for s in wecom_rx.seen}) == 1
    assert len({s.encrypt for s in wecom_rx.seen}) == 3


async def test_gives_up_after_three_retries(sim: Simulator, wecom_rx: Receiver) -> None:
    wecom_rx.statuses = [500] * 10
    added = await sim.add_friend("zhangsan")
    assert not added.delivery.ok and added.delivery.tries == 4 and len(wecom_rx.seen) == 4


async def test_retry_after_timeout(
    state: SimState, bot_server: TestServer, session: aiohttp.ClientSession, wecom_rx: Receiver
) -> None:
    wecom_pusher, _ = make_pushers(state, bot_server, session, timeout=0.05)
    wecom_rx.hang = 1
    added = await Simulator(state, wecom=wecom_pusher).add_friend("zhangsan")
    first, second = added.delivery.attempts
    assert first.status is None and first.error is not None and "0.05" in first.error
    assert second.status == 200 and added.delivery.ok


async def test_duplicates_on_purpose(sim: Simulator, wecom_rx: Receiver) -> None:
    added = await sim.add_friend("zhangsan", duplicates=2)
    assert added.delivery.tries == 1 and len(added.delivery.attempts) == 3
    events = wecom_rx.events("wecom")
    assert len({e.dedup_key for e in events}) == 1 and len(events) == 3


async def test_oa_safe_mode_and_encrypted_passive_reply(sim: Simulator, mp_rx: Receiver, state: SimState) -> None:
    fan = state.add_follower()
    mp_rx.reply = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content></xml>"
    delivery = await sim.send_text(fan.openid, "签到")
    assert delivery.reply == mp_rx.reply and delivery.reply_error is None
    [seen] = mp_rx.seen
    assert seen.query["openid"] == fan.openid
    [event] = mp_rx.events("mp")
    assert isinstance(event, TextReceived) and event.content == "签到"
    assert int(event.raw["MsgId"]) > 0 and event.account == state.accounts.mp_original_id


async def test_oa_plain_mode(aiohttp_server: Any, state: SimState, session: aiohttp.ClientSession) -> None:
    seen: list[tuple[dict[str, str], str]] = []

    async def plain(request: web.Request) -> web.Response:
        seen.append((dict(request.query), await request.text()))
        return web.Response(text="success")

    app = web.Application()
    app.router.add_post("/mp", plain)
    server: TestServer = await aiohttp_server(app)
    target = mp_target(state.accounts, str(server.make_url("/mp")), safe_mode=False)
    fan = state.add_follower()
    delivery = await Simulator(state, mp=CallbackPusher(session, target, clock=state.clock)).click_menu(fan.openid, "K")
    assert delivery.ok and delivery.reply is None
    [(query, body)] = seen
    assert set(query) == {"signature", "timestamp", "nonce", "openid"}
    assert query["signature"] == signature(state.accounts.mp_token, query["timestamp"], query["nonce"])
    assert isinstance(from_fields("mp", parse_xml(body)), MenuClicked)


# --- journeys ------------------------------------------------------------------------------------


async def test_group_join_and_leave(
    sim: Simulator, wecom_rx: Receiver, state: SimState, api: TestClient[Any, Any]
) -> None:
    created = await sim.create_group("zhangsan", "VIP 1")
    a = state.add_contact("zhangsan", unionid="uA").external_userid
    b = state.add_contact("zhangsan").external_userid
    await sim.join_group(created.chat_id, [a, b], join_state="grp_poster")
    await sim.leave_group(created.chat_id, [b])
    _, joined, left = wecom_rx.events("wecom")
    assert isinstance(joined, GroupMembersJoined) and isinstance(left, GroupMembersLeft)
    assert joined.member_ids == (a, b) and joined.join_scene == 3 and joined.mem_change_cnt == 2
    assert joined.cur_mem_ver == left.last_mem_ver != joined.last_mem_ver
    assert "<MemChangeList><Item><![CDATA[" in wecom_rx.seen[1].plaintext
    token = await wecom_token(api, state)
    resp = await api.post(
        "/wecom/cgi-bin/externalcontact/groupchat/get",
        params={"access_token": token},
        json={"chat_id": created.chat_id},
    )
    chat = (await resp.json())["group_chat"]
    assert chat["member_version"] == left.cur_mem_ver
    [member] = [m for m in chat["member_list"] if m["userid"] == a]
    assert member == {
        "userid": a,
        "type": 2,
        "join_time": int(START.timestamp()),
        "join_scene": 3,
        "group_nickname": "",
        "unionid": "uA",
        "state": "grp_poster",
    }


async def test_customer_deletes_staff(sim: Simulator, wecom_rx: Receiver, state: SimState) -> None:
    added = await sim.add_friend("zhangsan")
    await sim.delete_friend_by_customer("zhangsan", added.external_userid)
    assert isinstance(wecom_rx.events("wecom")[-1], FriendLost)
    assert not state.contacts[added.external_userid].follow["zhangsan"].active


async def test_kf_journey(sim: Simulator, wecom_rx: Receiver, state: SimState, api: TestClient[Any, Any]) -> None:
    await sim.kf_customer_writes("wkK", "wmC", "在吗")
    [event] = wecom_rx.events("wecom")
    assert isinstance(event, KfMessagesPending) and event.open_kfid == "wkK"
    token = await wecom_token(api, state)
    body = {"token": event.token, "open_kfid": "wkK"}
    resp = await api.post("/wecom/cgi-bin/kf/sync_msg", params={"access_token": token}, json=body)
    [msg] = (await resp.json())["msg_list"]
    assert msg["text"] == {"content": "在吗"} and msg["origin"] == 3 and msg["external_userid"] == "wmC"


async def test_oa_follow_scan_click_unfollow(
    sim: Simulator, mp_rx: Receiver, state: SimState, api: TestClient[Any, Any], clock: FrozenClock
) -> None:
    new = await sim.follow(scene="ch_poster_01")
    await sim.scan(new.openid, "ch_shop")
    await sim.click_menu(new.openid, "CHECKIN")
    followed, scanned, clicked = mp_rx.events("mp")
    assert isinstance(followed, Followed) and followed.scene == "ch_poster_01"
    assert followed.raw["EventKey"] == "qrscene_ch_poster_01" and followed.ticket
    assert isinstance(scanned, Scanned) and scanned.scene == "ch_shop"
    assert isinstance(clicked, MenuClicked) and clicked.key == "CHECKIN"
    acc = state.accounts
    q = {"grant_type": "client_credential", "appid": acc.app_id, "secret": acc.app_secret}
    token = (await (await api.get("/mp/cgi-bin/token", params=q)).json())["access_token"]
    body = {"touser": new.openid, "msgtype": "text", "text": {"content": "欢迎"}}

    async def send() -> int:
        resp = await api.post("/mp/cgi-bin/message/custom/send", params={"access_token": token}, json=body)
        code: int = (await resp.json())["errcode"]
        return code

    assert await send() == 0
    clock.advance(61)
    assert await send() == 45015
    await sim.unfollow(new.openid)
    assert isinstance(mp_rx.events("mp")[-1], Unfollowed)
    info = await api.get("/mp/cgi-bin/user/info", params={"access_token": token, "openid": new.openid})
    assert (await info.json()) == {"subscribe": 0, "openid": new.openid}
