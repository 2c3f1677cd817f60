"""``bot/wechat.py`` against the platforms' own sample vectors (docs/platform.md#sample-vectors).

The WeCom values come from the official WeCom API samples (``callback/Sample.py``, and the example of
the 加解密方案说明 page); the Official Account ones from its crypto demo and the worked examples of its
server-configuration page. ``tests/kernel/test_callbacks.py`` runs vector V1 through the running server.
"""

from __future__ import annotations

import pytest

from bot.wechat import CallbackRejected, EnvelopeCrypto, parse_xml, signature
from tests.support.settings import MP_AES, MP_APPID, MP_TOKEN, WECOM_AES, WECOM_CORP, WECOM_TOKEN

# --- WeCom official Python sample (callback/Sample.py) ------------------------------------------

V1_ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
V1_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkY"
    "cD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4"
    "Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f"
    "49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
V1_JSON_ENCRYPT = (
    "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9frBoUE2"
    "Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4W"
    "eG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU="
)

# --- Official Account crypto demo ----------------------------------------------------------------

V4_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXp"
    "bUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlp"
    "Kn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD"
    "1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)


def wecom() -> EnvelopeCrypto:
    return EnvelopeCrypto(WECOM_TOKEN, WECOM_AES, WECOM_CORP, work=True)


def test_wecom_url_verification_vector() -> None:
    crypto = wecom()
    crypto.check("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", V1_ECHOSTR)
    assert crypto.decrypt(V1_ECHOSTR) == "1288432023552776189"


def test_wecom_xml_message_vector() -> None:
    crypto = wecom()
    crypto.check("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914", V1_ENCRYPT)
    fields = parse_xml(crypto.decrypt(V1_ENCRYPT))
    assert fields["FromUserName"] == "ChenJiaShun"
    assert fields["Content"] == "你好"
    assert fields["MsgId"] == "1456453720"


def test_wecom_json_message_vector_decrypts() -> None:
    """The sample's JSON plaintext is itself not valid JSON (``": :mycreate"``): check decryption only."""
    crypto = wecom()
    crypto.check("e3647471e395139e2308c1fa963f2d648a00b90e", "1409659813", "1372623149", V1_JSON_ENCRYPT)
    plaintext = crypto.decrypt(V1_JSON_ENCRYPT)
    assert plaintext.startswith('{ "ToUserName": "wx5823bf96d3bd56c7"')
    assert '"AgentID": 218}' in plaintext


def test_wecom_vector_is_refused_with_a_wrong_signature_or_receive_id() -> None:
    with pytest.raises(CallbackRejected) as bad_sig:
        wecom().check("0" * 40, "1476422779", "1597212914", V1_ENCRYPT)
    assert bad_sig.value.status == 403
    other_corp = EnvelopeCrypto(WECOM_TOKEN, WECOM_AES, "ww0000000000000000", work=True)
    with pytest.raises(CallbackRejected) as bad_id:
        other_corp.decrypt(V1_ENCRYPT)
    assert bad_id.value.status == 400


def test_official_account_safe_mode_vector() -> None:
    crypto = EnvelopeCrypto(MP_TOKEN, MP_AES, MP_APPID, work=False)
    crypto.check("5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132", V4_ENCRYPT)
    fields = parse_xml(crypto.decrypt(V4_ENCRYPT))
    assert fields["ToUserName"] == "gh_10f6c3c3ac5a"
    assert fields["FromUserName"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert fields["Content"] == "abcdteT"
    assert fields["MsgId"] == "6054768590064713728"


def test_official_account_plain_signatures() -> None:
    """The plain-mode ``signature`` (token, timestamp, nonce only): the documentation's worked examples."""
    assert signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    assert signature("AAAAA", "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    assert signature(MP_TOKEN, "1409735669", "1320562132") == "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"


def test_encrypted_reply_round_trips_and_is_signed() -> None:
    crypto = wecom()
    envelope = parse_xml(crypto.encrypted_reply("<xml><Content>hi</Content></xml>", "461056294", "1411525903"))
    assert envelope["TimeStamp"] == "1411525903"
    crypto.check(envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"])
    assert crypto.decrypt(envelope["Encrypt"]) == "<xml><Content>hi</Content></xml>"
