"""The console's per-app state (services, templates, login throttles), security headers and rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.services import Services
from handlers.console.i18n import LOCALE, t
from handlers.interactions.h5.core import HSTS, SECURITY_HEADERS
from handlers.interactions.h5.ratelimit import TokenBucket

PREFIX = "/console"
TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
# No script at all; styles and images from here only; forms post back here only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": CSP, "Referrer-Policy": "same-origin"}


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(t=t, locale=LOCALE, prefix=PREFIX)
    return env


@dataclass
class Console:
    services: Services
    env: Environment = field(default_factory=_environment)
    # Sign-in attempts: 5 at once per account then one a minute; 20 per address then one every 10 s.
    per_account: TokenBucket = field(default_factory=lambda: TokenBucket(5, 1 / 60))
    per_address: TokenBucket = field(default_factory=lambda: TokenBucket(20, 1 / 10))

    @property
    def secure_cookies(self) -> bool:
        return bool(self.services.settings.server.public_base_url.startswith("https://"))

    def now(self) -> datetime:
        return self.services.clock.now()

    def local(self, at: datetime | str | None) -> str:
        """A time as the operators read it: local (the configured timezone), to the minute."""
        if at is None or at == "":
            return "-"
        when = datetime.fromisoformat(at) if isinstance(at, str) else at
        return when.astimezone(self.services.settings.tz).strftime("%Y-%m-%d %H:%M")

    def render(self, template: str, http_status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(template).render(local=self.local, **context)
        return web.Response(text=html, status=http_status, content_type="text/html", charset="utf-8")


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def secure_console_responses(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer under /console — pages, files, 404s, errors — gets the security headers."""
    if not is_console(request.path):
        return
    response.headers.update(HEADERS)
    if request.app[CONSOLE].secure_cookies:
        response.headers["Strict-Transport-Security"] = HSTS
