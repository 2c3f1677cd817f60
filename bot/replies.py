"""Passive replies a handler may return for an Official Account event (docs/platform.md#passive-replies).

Handlers return these plain values; the transport renders them to XML (and encrypts in safe mode),
or, when the reply budget has passed, the dispatcher turns them into a customer-service message
(``message/custom/send``, docs/platform.md#customer-service-messages) where the platform's window allows one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TextReply:
    content: str

    def passive_fields(self) -> dict[str, Any]:
        return {"MsgType": "text", "Content": self.content}

    def custom_message(self, openid: str) -> dict[str, Any]:
        return {"touser": openid, "msgtype": "text", "text": {"content": self.content}}


@dataclass(frozen=True, slots=True)
class NewsReply:
    """One article: since 2018-10-12 the platform allows exactly one (more → 45008)."""

    title: str
    description: str
    url: str
    pic_url: str = ""

    def passive_fields(self) -> dict[str, Any]:
        article = {
            "Title": self.title,
            "Description": self.description,
            "PicUrl": self.pic_url,
            "Url": self.url,
        }
        return {"MsgType": "news", "ArticleCount": 1, "Articles": {"item": article}}

    def custom_message(self, openid: str) -> dict[str, Any]:
        article = {
            "title": self.title,
            "description": self.description,
            "url": self.url,
            "picurl": self.pic_url,
        }
        return {"touser": openid, "msgtype": "news", "news": {"articles": [article]}}


Reply = TextReply | NewsReply
