"""The callback core through the running server: verify → decrypt → parse → receipt → ack → handlers."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.clock import FrozenClock
from bot.config import Settings
from bot.context import Context
from bot.db.models import Customer, OutboxCall, Receipt
from bot.dispatcher import Router
from bot.events import FriendAdded, TextReceived
from bot.replies import TextReply
from bot.wechat import EnvelopeCrypto, parse_xml
from handlers.growth import friends
from tests.support.apps import ClientFactory, start_bot
from tests.support.settings import MP_AES, MP_APPID, MP_TOKEN, WECOM_AES, WECOM_CORP, WECOM_TOKEN
from tests.support.wire import WECOM, contact_event, mp_request, mp_text, wecom_request

V1_ECHO = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "timestamp": "1476416373",
    "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
V1_MSG_PARAMS = {
    "msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
    "timestamp": "1476422779",
    "nonce": "1597212914",
}
V1_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkY"
    "cD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4"
    "Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f"
    "49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)


def counting_router(counter: list[Any]) -> Router:
    r = Router("count")

    @r.on(FriendAdded)
    async def count_it(event: FriendAdded, ctx: Context) -> None:
        counter.append(event.external_userid)

    return r


async def test_official_sample_vector_url_verification_and_message(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    bot = await start_bot(aiohttp_client, settings, clock)
    # The echostr has '+' and '/' percent-encoded the way WeCom sends it.
    resp = await bot.client.get("/callback/wecom", params=V1_ECHO)
    assert resp.status == 200
    assert await resp.text() == "1288432023552776189"

    body = (
        f"<xml><ToUserName><![CDATA[{WECOM_CORP}]]></ToUserName><Encrypt><![CDATA[{V1_ENCRYPT}]]></Encrypt>"
        "<AgentID><![CDATA[1000002]]></AgentID></xml>"
    )
    resp = await bot.client.post("/callback/wecom", params=V1_MSG_PARAMS, data=body)
    assert resp.status == 200
    await bot.settle()
    [receipt] = await bot.receipts()
    assert receipt.kind == "app_message_received"
    assert receipt.payload["Content"] == "你好"
    assert receipt.status == "done"


async def test_twenty_concurrent_deliveries_plus_retries_make_one_receipt_one_run(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    runs: list[str] = []
    bot = await start_bot(aiohttp_client, settings, clock, routers=[counting_router(runs), friends.router])
    xml = contact_event("add_external_contact", "wmCUSTOMER1", 1700000000, State="pkgcard", WelcomeCode="WC1")

    async def deliver() -> int:
        params, body = wecom_request(xml)  # a fresh encryption per delivery, like WeChat's retries
        resp = await bot.client.post("/callback/wecom", params=params, data=body)
        return resp.status

    statuses = await asyncio.gather(*(deliver() for _ in range(20)))
    for _ in range(3):
        statuses.append(await deliver())
    await bot.settle()
    assert statuses == [200] * 23
    assert await bot.count(Receipt) == 1
    assert runs == ["wmCUSTOMER1"]
    assert await bot.count(Customer, Customer.external_userid == "wmCUSTOMER1") == 1
    assert bot.services.metrics.total("siyu_dedup_hits_total") == 22


async def test_two_customers_added_in_the_same_second_are_two_events(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    runs: list[str] = []
    bot = await start_bot(aiohttp_client, settings, clock, routers=[counting_router(runs)])
    for ext in ("wmA", "wmB"):
        params, body = wecom_request(contact_event("add_external_contact", ext, 1700000000, State="pkgcard"))
        assert (await bot.client.post("/callback/wecom", params=params, data=body)).status == 200
    await bot.settle()
    assert await bot.count(Receipt) == 2
    assert sorted(runs) == ["wmA", "wmB"]


async def test_every_change_type_is_stored_and_unknown_events_are_kept(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    xmls = [
        contact_event("edit_external_contact", "wm1", 1),
        contact_event("del_external_contact", "wm1", 2, Source="DELETE_BY_TRANSFER"),
        contact_event("del_follow_user", "wm1", 3),
        contact_event("transfer_fail", "wm1", 4, FailReason="customer_refused"),
        contact_event("add_half_external_contact", "wm1", 5, State="s", WelcomeCode="W"),
        contact_event("msg_audit_approved", "wm1", 6, WelcomeCode="W2"),
        contact_event("some_future_change", "wm1", 7),
        (
            f"<xml><ToUserName>{WECOM_CORP}</ToUserName><FromUserName>sys</FromUserName><CreateTime>8</CreateTime>"
            "<MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wr1</ChatId>"
            "<ChangeType>update</ChangeType><UpdateDetail>add_member</UpdateDetail><JoinScene>3</JoinScene>"
            "<MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>wmA</Item><Item>wmB</Item></MemChangeList>"
            "<LastMemVer>v1</LastMemVer><CurMemVer>v2</CurMemVer></xml>"
        ),
        (
            f"<xml><ToUserName>{WECOM_CORP}</ToUserName><FromUserName>sys</FromUserName><CreateTime>9</CreateTime>"
            "<MsgType>event</MsgType><Event>change_external_tag</Event><Id>et1</Id><ChangeType>shuffle</ChangeType></xml>"
        ),
        (
            f"<xml><ToUserName>{WECOM_CORP}</ToUserName><FromUserName>sys</FromUserName><CreateTime>10</CreateTime>"
            "<MsgType>event</MsgType><Event>kf_msg_or_event</Event><Token>T1</Token><OpenKfId>wkAAA</OpenKfId></xml>"
        ),
    ]
    for xml in xmls:
        params, body = wecom_request(xml)
        assert (await bot.client.post("/callback/wecom", params=params, data=body)).status == 200
    await bot.settle()
    kinds = [r.kind for r in await bot.receipts()]
    assert kinds == [
        "friend_edited", "friend_removed_by_staff", "friend_lost", "transfer_failed", "friend_added",
        "chat_archive_approved", "unknown", "group_members_joined", "corp_tag_changed", "kf_messages_pending",
    ]  # fmt: skip


async def test_passive_reply_is_encrypted_in_safe_mode(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    r = Router("echo")

    @r.on(TextReceived)
    async def echo(event: TextReceived, ctx: Context) -> TextReply:
        return TextReply(f"你说了：{event.content}")

    bot = await start_bot(aiohttp_client, settings, clock, routers=[r])
    params, body = mp_request(mp_text("oUSER1", "签到", 6054768590064713728, 1700000000))
    resp = await bot.client.post("/callback/mp", params=params, data=body)
    assert resp.status == 200
    envelope = parse_xml(await resp.text())
    crypto = EnvelopeCrypto(MP_TOKEN, MP_AES, MP_APPID, work=False)
    crypto.check(envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"])
    reply = parse_xml(crypto.decrypt(envelope["Encrypt"]))
    assert reply["MsgType"] == "text"
    assert reply["Content"] == "你说了：签到"
    assert reply["ToUserName"] == "oUSER1"
    assert reply["FromUserName"] == "gh_10f6c3c3ac5a"


async def test_reply_that_misses_the_budget_goes_out_as_customer_service_message(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    from tests.support.settings import make_settings

    settings = make_settings(db_url, server={"reply_budget_seconds": 0.1})
    gate = asyncio.Event()
    r = Router("slow")

    @r.on(TextReceived)
    async def slow(event: TextReceived, ctx: Context) -> TextReply:
        await gate.wait()
        return TextReply("晚到的回复")

    bot = await start_bot(aiohttp_client, settings, clock, routers=[r])
    params, body = mp_request(mp_text("oUSER2", "抽奖", 42, 1700000000))
    resp = await bot.client.post("/callback/mp", params=params, data=body)
    assert await resp.text() == "success"
    gate.set()
    await bot.settle()
    [call] = await bot.outbox()
    assert call.api == "message/custom/send"
    assert call.payload == {"touser": "oUSER2", "msgtype": "text", "text": {"content": "晚到的回复"}}
    assert await bot.count(OutboxCall) == 1


async def test_plain_mode_is_refused_unless_allowed(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    from bot.wechat import signature

    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    ts, nonce = "1714037059", "486452656"
    params = {"signature": signature(MP_TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
    resp = await bot.client.post("/callback/mp", params=params, data=mp_text("o1", "hi", 1, 1))
    assert resp.status == 403
    assert await bot.count(Receipt) == 0


async def test_official_account_url_verification_echoes_plain_echostr(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    from tests.support.settings import make_settings

    # Official worked example (docs/platform.md#oa-safe-mode): token AAAAA.
    settings = make_settings(db_url, official_account={"token": "AAAAA"})
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    params = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "4375120948345356249",
    }
    resp = await bot.client.get("/callback/mp", params=params)
    assert (resp.status, await resp.text()) == (200, "4375120948345356249")
    resp = await bot.client.get("/callback/mp", params={**params, "signature": "0" * 40})
    assert resp.status == 403


def test_wecom_crypto_round_trip_matches_library() -> None:
    xml = contact_event("add_external_contact", "wmX", 1)
    enc = WECOM.encrypt(xml)
    assert EnvelopeCrypto(WECOM_TOKEN, WECOM_AES, WECOM_CORP, work=True).decrypt(enc) == xml
