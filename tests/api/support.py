"""The admin API under test: the bot with keys of every scope, and a client that checks every answer
against the OpenAPI document (status documented for the route, body valid against its schema)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from multidict import CIMultiDictProxy

from handlers.api.keys import create_key
from handlers.api.routes import document
from tests.support.apps import RunningBot


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


def _template(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(tag|path)\\\}", "(.+)", re.escape(path))
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "([^/]+)", pattern) + "$")


class Api:
    """``await api.get("/customers", key="read")``: the request, then the answer checked against the document."""

    def __init__(self, bot: RunningBot, keys: dict[str, str]) -> None:
        self.bot, self.keys = bot, keys
        self.client: TestClient[Any, Any] = bot.client
        self.spec = document()
        self._paths = [(_template(p), p) for p in self.spec["paths"]]

    async def call(self, method: str, path: str, *, key: str | None = "admin", **kw: Any) -> Answer:
        headers = dict(kw.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        async with self.client.request(method, "/api/v1" + path, headers=headers, **kw) as resp:
            raw = await resp.read()
            ctype = resp.headers.get("Content-Type", "")
            body = await resp.json(content_type=None) if raw else None
            self.check(method, "/api/v1" + path.split("?")[0], resp.status, ctype, body)
            return Answer(resp.status, body, resp.headers)

    def check(self, method: str, path: str, status: int, ctype: str, body: Any) -> None:
        found = [t for pattern, t in self._paths if pattern.match(path)]
        assert found, f"{path} is not in the OpenAPI document"
        operation = self.spec["paths"][found[0]].get(method.lower())
        assert operation is not None, f"{method} {found[0]} is not in the OpenAPI document"
        response = operation["responses"].get(str(status))
        assert response is not None, f"{method} {found[0]} answered {status}, which the document does not list"
        content = response.get("content")
        if content is None:
            assert body is None, f"{status} has no body in the document"
            return
        media = ctype.split(";")[0].strip()
        assert media in content, f"{method} {found[0]} {status}: {media} not documented ({list(content)})"
        schema = {**content[media]["schema"], "components": self.spec["components"]}
        Draft202012Validator(schema).validate(body)

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Answer:
        return await self.call("POST", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        return await self.call("DELETE", path, **kw)


async def make_keys(bot: RunningBot) -> dict[str, str]:
    keys = {}
    async with bot.services.sessions() as session, session.begin():
        for scope in ("read", "write", "admin"):
            keys[scope] = await create_key(session, f"{scope}-key", scope, bot.services.clock.now())
    return keys
