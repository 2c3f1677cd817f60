"""The one seam to wechatpy: callback signatures, AES envelope crypto and XML parsing.

wechatpy stays confined to this module on purpose: the release we need is a pre-release (2.0.0a26), so one
file checked against the official sample vectors is all an upgrade or a replacement has to touch.

Protocol (docs/platform.md#callback-crypto, WeCom doc 91144, OA "Message encryption"): signature is
``sha1(sorted([token, timestamp, nonce, encrypt]))``; the AES-256-CBC key is
``base64(EncodingAESKey + "=")``; the decrypted plaintext must end with the receive id (CorpID for
WeCom, AppID for the Official Account). Everything that can go wrong with attacker-controlled
input is turned into :class:`CallbackRejected` so the transport answers 4xx, never 500.

Nothing the signature does not cover is parsed before it is checked: :func:`envelope_encrypt` cuts
``Encrypt`` out of the envelope with a bounded scan, and :func:`parse_xml` (defusedxml, bounded, no
recursion) only ever sees signed, decrypted plaintext — or the unsigned plain-mode OA body.
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

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
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
        """The 4-field encrypted passive-reply envelope (docs/platform.md#encrypted-replies)."""
        ts = timestamp or str(int(time.time()))
        nc = nonce or str(secrets.randbelow(10**10))
        enc = self.encrypt(plaintext)
        return _REPLY_ENVELOPE.format(encrypt=enc, signature=self.sign(ts, nc, enc), timestamp=ts, nonce=nc)


# WeChat's documents are shallow: <xml> → field → (MemChangeList → Item | ScanCodeInfo → …) is at most 4
# deep. Anything past these bounds is refused while it is being parsed, not after.
MAX_XML_DEPTH = 8
MAX_XML_ELEMENTS = 10_000


def parse_xml(text: str | bytes) -> dict[str, Any]:
    """Parse a WeChat ``<xml>`` document into a dict shaped like xmltodict's (the parser wechatpy uses):
    leaves are strings (``None`` when empty), repeated children become lists.

    defusedxml refuses any DTD, entity declaration or external reference (XXE, entity bombs), whatever
    the document's encoding; the document must be UTF-8 (WeChat only sends UTF-8). The dict is built
    while expat streams the document, without recursion, and parsing stops at the first element past
    :data:`MAX_XML_DEPTH` or :data:`MAX_XML_ELEMENTS`.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise CallbackRejected(400, "XML must be UTF-8")  # UTF-16/32 (never sent by WeChat)
    builder = _FieldsBuilder()
    try:
        parser = DefusedXMLParser(target=builder, encoding="utf-8", forbid_dtd=True)
        parser.feed(data)
        parser.close()
    except DefusedXmlException:
        raise CallbackRejected(400, "DTDs and entities are not allowed") from None
    except (ElementTree.ParseError, ValueError):
        raise CallbackRejected(400, "malformed XML") from None
    return builder.result()


class _FieldsBuilder:
    """An ElementTree parser target that builds the fields dict directly (a stack, no tree, no recursion)."""

    def __init__(self) -> None:
        # One frame per open element: its tag, its children so far (None: a leaf so far), its text.
        self._stack: list[tuple[str, dict[str, Any] | None, list[str]]] = []
        self._elements = 0
        self._root: tuple[str, Any] | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._elements += 1
        if len(self._stack) >= MAX_XML_DEPTH:
            raise CallbackRejected(400, "XML nested too deeply")
        if self._elements > MAX_XML_ELEMENTS:
            raise CallbackRejected(400, "XML has too many elements")
        if self._stack and self._stack[-1][1] is None:
            parent_tag, _, parent_text = self._stack[-1]
            self._stack[-1] = (parent_tag, {}, parent_text)
        self._stack.append((tag, None, []))

    def data(self, text: str) -> None:
        if self._stack:
            self._stack[-1][2].append(text)

    def end(self, tag: str) -> None:
        _, children, text = self._stack.pop()
        value: Any = children if children is not None else ("".join(text) or None)
        if not self._stack:
            self._root = (tag, value)
            return
        siblings = self._stack[-1][1]
        assert siblings is not None
        if tag not in siblings:
            siblings[tag] = value
        elif isinstance(siblings[tag], list):  # values are str, None or dict: a list means "repeated"
            siblings[tag].append(value)
        else:
            siblings[tag] = [siblings[tag], value]

    def close(self) -> None:
        return None

    def result(self) -> dict[str, Any]:
        if self._root is None or self._root[0] != "xml" or not isinstance(self._root[1], dict):
            raise CallbackRejected(400, "XML root must be <xml> with fields")
        fields: dict[str, Any] = self._root[1]
        return fields


_ENVELOPE_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


def envelope_encrypt(body: bytes) -> str:
    """The ``Encrypt`` value of an encrypted callback envelope, found without parsing the envelope.

    ``msg_signature`` covers ``Encrypt`` only; the rest of the envelope (ToUserName, AgentID) is not
    signed and is never read. So the value is cut out with a bounded scan (a few ``bytes.find``, O(size),
    no recursion, no XML parser): the caller checks the signature over it before anything is parsed, and
    an unsigned body costs no more than reading it.
    """
    stripped = body.strip()
    if not stripped.startswith((b"<xml>", b"<?xml")) or not stripped.endswith(b"</xml>"):
        raise CallbackRejected(400, "envelope must be an <xml> document")
    start = stripped.find(b"<Encrypt>")
    if start < 0:
        raise CallbackRejected(400, "missing Encrypt")
    start += len(b"<Encrypt>")
    end = stripped.find(b"</Encrypt>", start)
    if end < 0 or stripped.find(b"<Encrypt>", end) >= 0:
        raise CallbackRejected(400, "envelope must have exactly one Encrypt")
    value = stripped[start:end].strip()
    if value.startswith(b"<![CDATA[") and value.endswith(b"]]>"):
        value = value[len(b"<![CDATA[") : -len(b"]]>")].strip()
    if not _ENVELOPE_BASE64.fullmatch(value):
        raise CallbackRejected(400, "Encrypt is not base64")
    return value.decode("ascii")


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
