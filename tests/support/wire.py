"""Build signed, encrypted callbacks the way WeChat sends them (for tests that need exact control)."""

from __future__ import annotations

import secrets
from typing import Any

from bot.wechat import EnvelopeCrypto, render_xml
from tests.support.settings import MP_AES, MP_APPID, MP_TOKEN, WECOM_AES, WECOM_CORP, WECOM_TOKEN

WECOM = EnvelopeCrypto(WECOM_TOKEN, WECOM_AES, WECOM_CORP, work=True)
MP = EnvelopeCrypto(MP_TOKEN, MP_AES, MP_APPID, work=False)


def contact_event(change_type: str, external_userid: str, create_time: int, **extra: Any) -> str:
    fields: dict[str, Any] = {
        "ToUserName": WECOM_CORP,
        "FromUserName": "sys",
        "CreateTime": create_time,
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": change_type,
        "UserID": extra.pop("UserID", "zhangsan"),
        "ExternalUserID": external_userid,
    }
    fields.update(extra)
    return render_xml(fields)


def mp_event(event: str, openid: str, create_time: int, **extra: Any) -> str:
    fields: dict[str, Any] = {
        "ToUserName": "gh_10f6c3c3ac5a",
        "FromUserName": openid,
        "CreateTime": create_time,
        "MsgType": "event",
        "Event": event,
    }
    fields.update(extra)
    return render_xml(fields)


def mp_text(openid: str, content: str, msg_id: int, create_time: int) -> str:
    return render_xml(
        {
            "ToUserName": "gh_10f6c3c3ac5a",
            "FromUserName": openid,
            "CreateTime": create_time,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


def wecom_request(plaintext: str, crypto: EnvelopeCrypto = WECOM) -> tuple[dict[str, str], str]:
    """A fresh encryption each call, like a WeChat retry: same plaintext, different ciphertext."""
    ts, nonce = "1700000000", str(secrets.randbelow(10**9))
    enc = crypto.encrypt(plaintext)
    body = render_xml({"ToUserName": WECOM_CORP, "Encrypt": enc, "AgentID": "1000002"})
    return {"msg_signature": crypto.sign(ts, nonce, enc), "timestamp": ts, "nonce": nonce}, body


def mp_request(plaintext: str, crypto: EnvelopeCrypto = MP) -> tuple[dict[str, str], str]:
    from bot.wechat import signature

    ts, nonce = "1700000000", str(secrets.randbelow(10**9))
    enc = crypto.encrypt(plaintext)
    body = render_xml({"ToUserName": "gh_10f6c3c3ac5a", "Encrypt": enc})
    params = {
        "signature": signature(MP_TOKEN, ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "openid": "o",
        "encrypt_type": "aes",
        "msg_signature": crypto.sign(ts, nonce, enc),
    }
    return params, body
