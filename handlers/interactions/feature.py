"""Interactions: referral (老带新), keyword replies, 微信客服, check-in, points, lottery and their H5 pages."""

from __future__ import annotations

from aiohttp import web

from bot.feature import Feature
from bot.periodic import Job
from bot.services import Services
from handlers.interactions import keywords, kf, referral
from handlers.interactions.commands import add_commands
from handlers.interactions.content import CONTENT, interactions_report
from handlers.interactions.h5 import add_h5_routes


def _h5_pages(app: web.Application, services: Services) -> None:
    """The check-in and lottery pages need a key to sign their sessions: served when one is configured."""
    if services.settings.server.session_secret:
        add_h5_routes(app, services)


# Referral runs first of all features' handlers: it must see an arrival before friends/follow create the
# customer row (that is what makes an invitee "genuinely new").
REFERRAL = Feature("referral", routers=(referral.router,), jobs=(Job("referral_release", 600.0, referral.release_due),))

INTERACTIONS = Feature(
    "interactions",
    content=CONTENT,
    content_reports=(interactions_report,),
    routers=(keywords.router, kf.router),
    routes=(_h5_pages,),
    commands=(add_commands,),
)
