"""Forged, truncated, oversized and hostile callbacks: 4xx, nothing stored, no platform call, still healthy."""

from __future__ import annotations

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import OutboxCall, Receipt
from bot.wechat import EnvelopeCrypto, render_xml
from tests.botapp import ClientFactory, start_bot
from tests.conftest import WECOM_AES, WECOM_CORP, WECOM_TOKEN
from tests.wire import WECOM, contact_event, mp_request, mp_text, wecom_request

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>'
)
XXE = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'


def _cases() -> list[tuple[str, int, dict[str, str], str | bytes]]:
    good_xml = contact_event("add_external_contact", "wmEVIL", 1700000000, State="x")
    params, body = wecom_request(good_xml)
    forged = {**params, "msg_signature": "0" * 40}
    other_corp = EnvelopeCrypto(WECOM_TOKEN, WECOM_AES, "wwSOMEONEELSE", work=True)
    wrong_receiver = wecom_request(good_xml, other_corp)
    bomb_inner = wecom_request(BOMB)
    enc = "not*base64!!"
    bad_b64_params = {**params, "msg_signature": WECOM.sign(params["timestamp"], params["nonce"], enc)}
    short = WECOM.encrypt(good_xml)[:-8]
    truncated_params = {**params, "msg_signature": WECOM.sign(params["timestamp"], params["nonce"], short)}
    return [
        ("forged signature", 403, forged, body),
        ("missing signature", 400, {k: v for k, v in params.items() if k != "msg_signature"}, body),
        ("truncated body", 400, params, body[: len(body) // 2]),
        ("truncated ciphertext", 400, truncated_params, render_xml({"Encrypt": short})),
        ("oversized body", 413, params, "<xml>" + "A" * 70_000 + "</xml>"),
        ("entity bomb envelope", 400, params, BOMB),
        ("external entity envelope", 400, params, XXE),
        ("entity bomb inside a valid signature", 400, *bomb_inner),
        ("wrong receive id", 400, *wrong_receiver),
        ("bad base64", 400, bad_b64_params, render_xml({"Encrypt": enc})),
        ("not xml", 400, params, b"\x00\xff\xfe garbage"),
        ("json instead of xml", 400, params, '{"Encrypt": "abc"}'),
        ("empty body", 400, params, ""),
    ]


async def test_hostile_wecom_callbacks_are_refused_and_nothing_is_stored(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    bot = await start_bot(aiohttp_client, settings, clock)
    for name, status, params, body in _cases():
        resp = await bot.client.post("/callback/wecom", params=params, data=body)
        assert resp.status == status, name
    await bot.settle()
    assert await bot.count(Receipt) == 0
    assert await bot.count(OutboxCall) == 0
    health = await bot.client.get("/healthz")
    assert health.status == 200
    # ... and a genuine callback still goes through afterwards.
    params, body = wecom_request(contact_event("add_external_contact", "wmOK", 1700000001))
    assert (await bot.client.post("/callback/wecom", params=params, data=body)).status == 200


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"msg_signature": "x"},
        {"msg_signature": "0" * 40, "timestamp": "1", "nonce": "2", "echostr": "abc"},
    ],
)
async def test_bad_url_verification_is_refused(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, query: dict[str, str]
) -> None:
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    resp = await bot.client.get("/callback/wecom", params=query)
    assert 400 <= resp.status < 500


async def test_hostile_official_account_callbacks(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    params, body = mp_request(mp_text("o1", "hi", 7, 1700000000))
    for bad_params, bad_body, status in [
        ({**params, "msg_signature": "1" * 40}, body, 403),
        (params, BOMB, 400),
        (params, "<xml><Encrypt>", 400),
        ({k: v for k, v in params.items() if k != "encrypt_type"}, mp_text("o1", "hi", 8, 1), 403),
    ]:
        resp = await bot.client.post("/callback/mp", params=bad_params, data=bad_body)
        assert resp.status == status
    assert await bot.count(Receipt) == 0


async def test_unauthenticated_receive_id_is_checked(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """A payload signed with our token but encrypted for another corp must not be stored."""
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    other = EnvelopeCrypto(WECOM_TOKEN, WECOM_AES, WECOM_CORP + "x", work=True)
    params, body = wecom_request(contact_event("add_external_contact", "wmZ", 1), other)
    assert (await bot.client.post("/callback/wecom", params=params, data=body)).status == 400
    assert await bot.count(Receipt) == 0


async def test_a_body_arriving_in_pieces_is_read_whole(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """Chunked transfer: the transport must read to the end, not just what arrived first."""
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    params, body = wecom_request(contact_event("add_external_contact", "wmCHUNK", 1700000000))

    async def pieces():  # type: ignore[no-untyped-def]
        data = body.encode()
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    resp = await bot.client.post("/callback/wecom", params=params, data=pieces())
    assert resp.status == 200
    assert await bot.count(Receipt) == 1
