"""Forged, truncated, oversized and hostile callbacks: 4xx, nothing stored, no platform call, still healthy."""

from __future__ import annotations

import xml.parsers.expat
from collections.abc import Callable
from typing import Any

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import OutboxCall, Receipt
from bot.wechat import CallbackRejected, EnvelopeCrypto, parse_xml, render_xml, signature
from tests.support.apps import ClientFactory, start_bot
from tests.support.settings import MP_TOKEN, WECOM_AES, WECOM_CORP, WECOM_TOKEN, make_settings
from tests.support.wire import MP, WECOM, contact_event, mp_event, mp_request, mp_text, wecom_request

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


# --- Deep nesting and encodings (issue item 7) ---------------------------------------------------------------------

DEEP = 5000  # 5,000 levels, ~35 KB: under the body cap, far past any recursion limit


def _deep(inner: str = "") -> str:
    return "<xml>" + "<a>" * DEEP + inner + "</a>" * DEEP + "</xml>"


def _count_expat_parsers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the XML parsers created from now on (every XML parse in bot.wechat goes through expat)."""
    created: list[int] = []
    real: Callable[..., Any] = xml.parsers.expat.ParserCreate

    def counted(*args: Any, **kwargs: Any) -> Any:
        created.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(xml.parsers.expat, "ParserCreate", counted)
    return created


@pytest.mark.parametrize("path", ["/callback/wecom", "/callback/mp"])
async def test_deep_unsigned_envelopes_are_refused_before_any_xml_is_parsed(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """An envelope's signature covers Encrypt only: it is checked on a cheap scan, before any XML parser runs."""
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    params, _ = (
        mp_request(mp_text("o1", "hi", 7, 1)) if path.endswith("mp") else wecom_request(contact_event("x", "wm", 1))
    )
    forged = {**params, "msg_signature": "0" * 40}
    signed_looking = WECOM.encrypt("<xml/>") if path.endswith("wecom") else MP.encrypt("<xml/>")
    created = _count_expat_parsers(monkeypatch)
    for body, params_, status, reason in [
        (_deep(), params, 400, "missing Encrypt"),  # nothing to check a signature over
        (_deep(f"<Encrypt><![CDATA[{signed_looking}]]></Encrypt>"), forged, 403, "bad signature"),
        (
            "<xml>" + "<a>" * DEEP + f"<Encrypt>{signed_looking}</Encrypt>",
            forged,
            400,
            "envelope must be an <xml> document",
        ),
    ]:
        resp = await bot.client.post(path, params=params_, data=body)
        assert (resp.status, await resp.text()) == (status, reason)
    assert created == []  # rejected without creating a single XML parser
    assert await bot.count(Receipt) == 0
    # The counter does see parsing: a genuine callback parses its (signed, decrypted) plaintext.
    params, body = (
        mp_request(mp_text("o1", "hi", 8, 1))
        if path.endswith("mp")
        else wecom_request(contact_event("add_external_contact", "wmOK", 1))
    )
    assert (await bot.client.post(path, params=params, data=body)).status == 200
    assert created != []


async def test_a_deep_signed_plaintext_is_refused_with_a_4xx(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    params, body = wecom_request(_deep())
    resp = await bot.client.post("/callback/wecom", params=params, data=body)
    assert (resp.status, await resp.text()) == (400, "XML nested too deeply")
    assert await bot.count(Receipt) == 0


def _plain_query(nonce: str = "5") -> dict[str, str]:
    return {"signature": signature(MP_TOKEN, "1700000000", nonce), "timestamp": "1700000000", "nonce": nonce}


UTF16_ENTITY = (  # a valid text message once its entity is expanded: the DTD must be refused, not expanded
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY lol "lol">]>'
    "<xml><ToUserName>gh_10f6c3c3ac5a</ToUserName><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime>"
    "<MsgType>text</MsgType><Content>&lol;</Content><MsgId>99</MsgId></xml>"
).encode("utf-16")


async def test_plain_mode_bodies_are_unsigned_so_they_are_parsed_with_bounds(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    settings = make_settings(db_url, official_account={"allow_plain": True})
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])
    for body, reason in [
        (_deep().encode(), "XML nested too deeply"),
        (UTF16_ENTITY, "XML must be UTF-8"),
        (BOMB.encode(), "DTDs and entities are not allowed"),
        (("<xml>" + "<A/>" * 10_001 + "</xml>").encode(), "XML has too many elements"),
    ]:
        resp = await bot.client.post("/callback/mp", params=_plain_query(), data=body)
        assert (resp.status, await resp.text()) == (400, reason)
    assert await bot.count(Receipt) == 0
    resp = await bot.client.post("/callback/mp", params=_plain_query(), data=mp_text("o1", "hi", 100, 1700000000))
    assert resp.status == 200 and await bot.count(Receipt) == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_parse_xml_refuses_documents_that_are_not_utf8(encoding: str) -> None:
    with pytest.raises(CallbackRejected) as refused:
        parse_xml(UTF16_ENTITY.decode("utf-16").replace("UTF-16", encoding.upper()).encode(encoding))
    assert refused.value.status == 400


def test_parse_xml_still_reads_what_wechat_sends() -> None:
    fields = parse_xml(
        "<xml><A>1</A><MemChangeList><Item>u1</Item><Item>u2</Item><Item>u3</Item></MemChangeList><C/>"
        "<D><![CDATA[a customer may write <!DOCTYPE x> or &amp;]]></D></xml>"
    )
    assert fields == {
        "A": "1",
        "MemChangeList": {"Item": ["u1", "u2", "u3"]},
        "C": None,
        "D": "a customer may write <!DOCTYPE x> or &amp;",
    }


# --- Signed but absurd fields (issue item 10) ----------------------------------------------------------------------


async def test_a_signed_callback_with_an_oversized_id_is_refused_at_the_door(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """It can never become valid: a 400 naming the field (not its value), no receipt to retry five times."""
    bot = await start_bot(aiohttp_client, settings, clock)  # the real handlers, as in production
    huge = "wm" + "A" * 40_000
    cases = [
        (contact_event("add_external_contact", huge, 1700000000), "field ExternalUserID is longer than 64 characters"),
        (contact_event("add_external_contact", "wmOK", 1700000000, State="s" * 65), "field State is longer than 64"),
        (contact_event("add_external_contact", "wmOK", 1700000000, UserID="u" * 65), "field UserID is longer than 64"),
        (contact_event("del_follow_user", "wmOK", 1700000000, WelcomeCode="w" * 129), "field WelcomeCode is longer"),
        (contact_event("some_future_change", huge, 1700000000), "field ExternalUserID is longer"),  # unknown: raw too
    ]
    for plaintext, reason in cases:
        params, body = wecom_request(plaintext)
        resp = await bot.client.post("/callback/wecom", params=params, data=body)
        assert resp.status == 400
        assert (await resp.text()).startswith(reason)
        assert "AAAA" not in await resp.text()
    group = (
        f"<xml><ToUserName>{WECOM_CORP}</ToUserName><FromUserName>sys</FromUserName><CreateTime>8</CreateTime>"
        "<MsgType>event</MsgType><Event>change_external_chat</Event><ChatId>wr1</ChatId>"
        "<ChangeType>update</ChangeType><UpdateDetail>add_member</UpdateDetail><MemChangeCnt>2</MemChangeCnt>"
        f"<MemChangeList><Item>wmA</Item><Item>{'x' * 65}</Item></MemChangeList></xml>"
    )
    params, body = wecom_request(group)
    resp = await bot.client.post("/callback/wecom", params=params, data=body)
    assert (resp.status, await resp.text()) == (400, "field Item is longer than 64 characters (65)")
    for mp_plaintext in [
        mp_text("o" * 65, "hi", 1, 1700000000),
        mp_text("o1", "x" * 16_385, 2, 1700000000),
        mp_event("CLICK", "o1", 1700000000, EventKey="k" * 129),
        mp_event("SCAN", "o1", 1700000000, EventKey="k" * 129),
    ]:
        params, body = mp_request(mp_plaintext)
        assert (await bot.client.post("/callback/mp", params=params, data=body)).status == 400
    await bot.settle()
    assert await bot.count(Receipt) == 0


async def test_ids_at_their_documented_bounds_are_stored_and_handled(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """The bounds are the columns' widths, so values at the limit go all the way through the handlers."""
    bot = await start_bot(aiohttp_client, settings, clock)
    plaintext = contact_event("add_external_contact", "w" * 64, 1700000000, UserID="u" * 64, State="s" * 64)
    params, body = wecom_request(plaintext)
    assert (await bot.client.post("/callback/wecom", params=params, data=body)).status == 200
    params, body = mp_request(mp_event("VIEW", "o" * 64, 1700000000, EventKey="https://example.com/" + "p" * 1000))
    assert (await bot.client.post("/callback/mp", params=params, data=body)).status == 200
    await bot.settle()
    receipts = await bot.receipts()
    assert [(r.kind, r.status, r.attempts <= 1) for r in receipts] == [
        ("friend_added", "done", True),
        ("menu_link_opened", "done", True),
    ]
