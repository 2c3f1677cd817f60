"""The one seam to wechatpy: callback signatures, AES envelope crypto and XML parsing.

Protocol (reference §1.1–1.4, WeCom doc 91144, OA "Message encryption"): signature is
``sha1(sorted([token, timestamp, nonce, encrypt]))``; the AES-256-CBC key is
``base64(EncodingAESKey + "=")``; the decrypted plaintext must end with the receive id (CorpID for
WeCom, AppID for the Official Account). Everything that can go wrong with attacker-controlled
input is turned into :class:`CallbackRejected` so the transport answers 4xx, never 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from typing import Any
from xml.etree import ElementTree

from wechatpy.crypto import PrpCrypto as _MpPrpCrypto
from wechatpy.work.crypto import PrpCrypto as _WorkPrpCrypto

_REPLY_ENVELOPE = (
    "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature>"
    "<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
)


class CallbackRejected(Exception):
    """Input that must be refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def signature(*parts: str) -> str:
    """WeChat's SHA-1 signature over the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


class EnvelopeCrypto:
    """Signs, encrypts and decrypts one account's callback envelopes (WeCom or Official Account)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str, *, work: bool) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=")
        except (binascii.Error, ValueError):
            raise ValueError("EncodingAESKey is not valid base64") from None
        if len(key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self._token = token
        self._key = key
        self._receive_id = receive_id
        self._prp = _WorkPrpCrypto if work else _MpPrpCrypto

    def __repr__(self) -> str:
        return f"EnvelopeCrypto(receive_id={self._receive_id!r})"

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self._token, timestamp, nonce, encrypt)

    def check(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not signature_matches(self.sign(timestamp, nonce, encrypt), msg_signature):
            raise CallbackRejected(403, "bad signature")

    def decrypt(self, encrypt: str) -> str:
        """Decrypt ``encrypt`` (already signature-checked) and return the inner plaintext."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackRejected(400, "ciphertext is not base64") from None
        if not raw or len(raw) % 16:
            raise CallbackRejected(400, "ciphertext length is not a multiple of the AES block")
        try:
            plaintext: str = self._prp(self._key).decrypt(encrypt, self._receive_id)
        except Exception:  # wechatpy raises bare struct/Unicode/InvalidCorpId errors
            raise CallbackRejected(400, "ciphertext does not decrypt to this account") from None
        return plaintext

    def encrypt(self, plaintext: str) -> str:
        out: bytes = self._prp(self._key).encrypt(plaintext, self._receive_id)
        return out.decode()

    def encrypted_reply(self, plaintext: str, nonce: str | None = None, timestamp: str | None = None) -> str:
        """The 4-field encrypted passive-reply envelope (reference §1.3)."""
        ts = timestamp or str(int(time.time()))
        nc = nonce or str(secrets.randbelow(10**10))
        enc = self.encrypt(plaintext)
        return _REPLY_ENVELOPE.format(encrypt=enc, signature=self.sign(ts, nc, enc), timestamp=ts, nonce=nc)


def parse_xml(text: str | bytes) -> dict[str, Any]:
    """Parse a WeChat ``<xml>`` document into a dict shaped like xmltodict's (the parser wechatpy uses):
    leaves are strings (``None`` when empty), repeated children become lists.

    The C ElementTree parser is ~3× faster than xmltodict on the callback hot path. WeChat never sends
    a DTD, so any ``<!DOCTYPE`` before the root element is refused outright (XXE, entity bombs).
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if (b"<!DOCTYPE" in data or b"<!ENTITY" in data) and _declares_dtd(data):
        raise CallbackRejected(400, "DTDs are not allowed")
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, ValueError):
        raise CallbackRejected(400, "malformed XML") from None
    if root.tag != "xml" or len(root) == 0:
        raise CallbackRejected(400, "XML root must be <xml> with fields")
    value = _element_value(root)
    assert isinstance(value, dict)
    return value


_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>", re.DOTALL)


def _declares_dtd(data: bytes) -> bool:
    """A DTD outside CDATA (a customer may well *write* "<!DOCTYPE" in a message, which arrives as CDATA)."""
    bare = _CDATA.sub(b"", data)
    return b"<!DOCTYPE" in bare or b"<!ENTITY" in bare


def _element_value(element: ElementTree.Element) -> Any:
    if len(element) == 0:
        return element.text or None
    out: dict[str, Any] = {}
    for child in element:
        value = _element_value(child)
        if child.tag in out:
            existing = out[child.tag]
            out[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[child.tag] = value
    return out


def extract_encrypt(fields: dict[str, Any]) -> str:
    value = fields.get("Encrypt")
    if not isinstance(value, str) or not value:
        raise CallbackRejected(400, "missing Encrypt")
    return value


def render_xml(fields: dict[str, Any]) -> str:
    """Render a flat reply dict as WeChat XML (CDATA for strings, bare numbers for ints)."""
    parts = ["<xml>"]
    for key, value in fields.items():
        parts.append(_render_value(key, value))
    parts.append("</xml>")
    return "".join(parts)


def _render_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return f"<{key}>{value}</{key}>"
    if isinstance(value, dict):
        inner = "".join(_render_value(k, v) for k, v in value.items())
        return f"<{key}>{inner}</{key}>"
    if isinstance(value, list):
        return f"<{key}>" + "".join(_render_value("item", v) for v in value) + f"</{key}>"
    text = str(value).replace("]]>", "]]]]><![CDATA[>")
    return f"<{key}><![CDATA[{text}]]></{key}>"
