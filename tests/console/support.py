"""The console under test: users of every role and a browser-less client that signs in through the form."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.services import Services
from handlers.console.users import add_user

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def make_user(services: Services, email: str, role: str, password: str = PASSWORD) -> None:
    async with services.sessions() as session, session.begin():
        await add_user(session, email, role, password, services.clock.now())


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(client: TestClient[Any, Any], email: str, password: str = PASSWORD) -> ClientResponse:
    form = await client.get("/console/login")
    token = csrf_of(await form.text())
    return await client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf": token, "next": "/console/"},
        allow_redirects=False,
    )


async def page_csrf(client: TestClient[Any, Any], path: str = "/console/customers") -> str:
    return csrf_of(await (await client.get(path)).text())
