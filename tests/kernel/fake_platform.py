"""A recording fake of the WeChat platforms' HTTP APIs and a throw-away SQLite token store, for the
platform client tests.

:class:`FakePlatform` issues tokens, remembers which are valid, records every request, and answers each
API from a per-API script of documented errcodes (then ``errcode: 0``); serve :meth:`FakePlatform.app`
with pytest-aiohttp's ``aiohttp_server`` and point a client's ``api_base_url`` at it.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import segno
from aiohttp import web

from bot.clock import Clock
from bot.config import DatabaseConfig, DatabaseURL
from bot.db.engine import make_engine, sessionmaker
from bot.db.models import Base
from bot.platform import DbTokenStore

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)  # the platform tests' frozen "now"
TOKEN_INVALID = {40001, 40014, 42001}


@dataclass
class Recorded:
    api: str
    query: dict[str, str]
    body: Any
    raw: bytes


@dataclass(frozen=True)
class LoseAnswer:
    """A script entry: the platform acts (the request is recorded as delivered) and its answer is lost —
    the connection is cut (``stall`` = 0) or the answer comes after ``stall`` seconds (a client timeout)."""

    stall: float = 0.0


@dataclass
class FakePlatform:
    """A recording stand-in for qyapi.weixin.qq.com / api.weixin.qq.com."""

    requests: list[Recorded] = field(default_factory=list)
    scripts: dict[str, list[dict[str, Any] | web.Response | LoseAnswer]] = field(
        default_factory=lambda: defaultdict(list)
    )
    valid: set[str] = field(default_factory=set)
    issued: int = 0
    stable: str | None = None
    token_errcode: int = 0
    base_url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self.gettoken)
        app.router.add_post("/cgi-bin/stable_token", self.stable_token)
        app.router.add_route("*", "/cgi-bin/{api:.+}", self.api)
        return app

    def calls(self, api: str) -> list[Recorded]:
        return [r for r in self.requests if r.api == api]

    def _issue(self) -> str:
        self.issued += 1
        token = f"TOKEN-{self.issued:04d}-SECRETLOOKING"
        self.valid.add(token)
        return token

    async def _record(self, request: web.Request, api: str) -> Any:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.requests.append(Recorded(api, dict(request.query), body, raw))
        await asyncio.sleep(0)  # let concurrent callers interleave
        return body

    async def gettoken(self, request: web.Request) -> web.Response:
        await self._record(request, "gettoken")
        if self.token_errcode:
            msg = f"invalid credential, corpsecret={request.query['corpsecret']} url={request.url}"
            return web.json_response({"errcode": self.token_errcode, "errmsg": msg})
        return web.json_response({"errcode": 0, "access_token": self._issue(), "expires_in": 7200})

    async def stable_token(self, request: web.Request) -> web.Response:
        body = await self._record(request, "stable_token")
        if self.stable is None or body["force_refresh"]:
            self.stable = self._issue()
        return web.json_response({"access_token": self.stable, "expires_in": 7200})

    async def api(self, request: web.Request) -> web.Response:
        api = request.match_info["api"]
        await self._record(request, api)
        token = request.query.get("access_token", "")
        if token not in self.valid:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if self.scripts[api]:
            answer = self.scripts[api].pop(0)
            if isinstance(answer, web.Response):
                return answer
            if isinstance(answer, LoseAnswer):
                if answer.stall:
                    await asyncio.sleep(answer.stall)
                elif request.transport is not None:
                    request.transport.abort()  # reset: the caller reads no answer
                return web.json_response({"errcode": 0, "errmsg": "ok", "api": api})
            if answer.get("errcode") in TOKEN_INVALID:
                self.valid.discard(token)
            return web.json_response(answer)
        return web.json_response({"errcode": 0, "errmsg": "ok", "api": api})


@asynccontextmanager
async def sqlite_token_store(path: Path, clock: Clock) -> AsyncIterator[DbTokenStore]:
    """A :class:`DbTokenStore` on a fresh SQLite file at ``path`` (tables created, engine disposed after)."""
    engine = make_engine(DatabaseConfig(url=DatabaseURL(f"sqlite+aiosqlite:///{path}")))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield DbTokenStore(sessionmaker(engine), clock)
    finally:
        await engine.dispose()


@asynccontextmanager
async def simulator_wecom_client(
    aiohttp_server: Any, state: Any, clock: Clock, token_db: Path, seed: int = 1
) -> AsyncIterator[Any]:
    """A real ``WeComClient`` talking to the simulator served on ``aiohttp_server`` (tokens in SQLite)."""
    import random

    import aiohttp

    from bot.config import Secret, WeComConfig
    from bot.platform import WeComClient
    from bot.simulator import make_sim_app

    server = await aiohttp_server(make_sim_app(state))
    acc = state.accounts
    cfg = WeComConfig(
        corp_id=acc.corp_id,
        agent_id=acc.agent_id,
        secret=Secret(acc.corp_secret),
        api_base_url=str(server.make_url("/wecom")),
    )
    async with sqlite_token_store(token_db, clock) as store, aiohttp.ClientSession() as http:
        yield WeComClient(http, cfg, store, clock, rng=random.Random(seed))


def png_bytes(payload: str = "hello") -> bytes:
    """A real PNG (a QR code of ``payload``) to upload as media."""
    out = io.BytesIO()
    segno.make(payload).save(out, kind="png")
    return out.getvalue()
