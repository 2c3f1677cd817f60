"""H5 pages served by siyu-bot: ``/h5/checkin`` and ``/h5/lottery/<campaign>`` (issue 5).

HTTP only — OAuth (``snsapi_base``), signed session cookies, CSRF, rate limits, HTML; the business
functions come from ``handlers.interactions.h5.actions`` (:class:`H5Actions`), each run in one transaction through
:func:`bot.actions.run_action`. Served when ``server.session_secret`` is set.

Routes: ``GET /h5/checkin``, ``GET /h5/lottery/{campaign}``, ``GET /h5/oauth`` (authorize callback),
``/h5/api/*`` (see :mod:`handlers.interactions.h5.api`), ``/h5/static/*`` (CSS, JS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from handlers.interactions.h5.api import add_api_routes
from handlers.interactions.h5.core import H5, H5_STATE, H5Actions, secure_h5_responses
from handlers.interactions.h5.oauth import CALLBACK_PATH, oauth_callback
from handlers.interactions.h5.pages import checkin_page, lottery_page
from handlers.interactions.h5.session import Signer

STATIC_DIR = Path(__file__).with_name("static")

__all__ = ["H5", "H5Actions", "add_h5_routes"]


def default_actions() -> H5Actions:
    import handlers.interactions.h5.actions as actions

    return actions


def add_h5_routes(app: web.Application, services: Any, actions: H5Actions | None = None) -> None:
    """Register the pages on ``app`` (``services``: the app's :class:`~bot.services.Services`)."""
    secret = services.settings.server.session_secret.get()
    app[H5_STATE] = H5(services, actions or default_actions(), Signer(secret))
    app.router.add_get("/h5/checkin", checkin_page)
    app.router.add_get("/h5/lottery/{campaign}", lottery_page)
    app.router.add_get(CALLBACK_PATH, oauth_callback)
    add_api_routes(app)
    app.router.add_static("/h5/static", STATIC_DIR, append_version=False)
    app.on_response_prepare.append(secure_h5_responses)
