"""The console's routes under ``/console/`` (served by ``siyu-bot serve`` with the rest of the app)."""

from __future__ import annotations

from aiohttp import web

from bot.services import Services
from handlers.console import audit, channels, content, customers, events, interactions, overview, sop, staff
from handlers.console.auth import login, login_form, logout, see_other
from handlers.console.core import CONSOLE, PREFIX, STATIC, Console, secure_console_responses

_CID = r"{id:\d+}"


async def _to_overview(_: web.Request) -> web.StreamResponse:
    return see_other(PREFIX + "/")


def add_console_routes(app: web.Application, services: Services) -> None:
    app[CONSOLE] = Console(services)
    r = app.router
    r.add_get(PREFIX, _to_overview)
    r.add_get(PREFIX + "/login", login_form)
    r.add_post(PREFIX + "/login", login)
    r.add_post(PREFIX + "/logout", logout)
    r.add_get(PREFIX + "/", overview.overview)
    r.add_get(PREFIX + "/customers", customers.search)
    r.add_get(f"{PREFIX}/customers/{_CID}", customers.profile)
    r.add_post(f"{PREFIX}/customers/{_CID}/tags", customers.add_tag)
    r.add_post(f"{PREFIX}/customers/{_CID}/tags/remove", customers.remove_tag)
    r.add_post(f"{PREFIX}/customers/{_CID}/drips/{{drip_id}}/start", customers.start_drip)
    r.add_post(f"{PREFIX}/customers/{_CID}/drips/{{drip_id}}/stop", customers.stop_drip)
    r.add_get(PREFIX + "/channels", channels.channels)
    r.add_get(PREFIX + "/channels/{code}/qr", channels.qr_png)
    r.add_get(PREFIX + "/sop", sop.sop)
    r.add_get(PREFIX + "/interactions", interactions.interactions)
    r.add_get(PREFIX + "/lottery/{campaign_id}/winners.csv", interactions.winners_csv)
    r.add_post(PREFIX + "/lottery/{campaign_id}/kill", interactions.kill)
    r.add_post(PREFIX + "/lottery/{campaign_id}/resume", interactions.resume)
    r.add_post(PREFIX + "/lottery/{campaign_id}/verify", interactions.verify)
    r.add_get(PREFIX + "/events", events.events)
    r.add_post(PREFIX + r"/events/{id:\d+}/retry", events.retry)
    r.add_post(PREFIX + r"/webhooks/{id:\d+}/enable", events.enable)
    r.add_post(PREFIX + r"/webhooks/{id:\d+}/disable", events.disable)
    r.add_post(PREFIX + r"/webhooks/deliveries/{id:\d+}/replay", events.replay_delivery)
    r.add_get(PREFIX + "/staff", staff.staff)
    r.add_get(PREFIX + "/content", content.content)
    r.add_post(PREFIX + "/content/push", content.push_directory)
    r.add_post(PREFIX + "/content/drafts", content.new_draft)
    r.add_get(PREFIX + r"/content/drafts/{id:\d+}", content.draft_page)
    r.add_post(PREFIX + r"/content/drafts/{id:\d+}/fields", content.save_fields)
    r.add_post(PREFIX + r"/content/drafts/{id:\d+}/publish", content.publish)
    r.add_post(PREFIX + r"/content/drafts/{id:\d+}/discard", content.discard)
    r.add_post(PREFIX + "/content/rollback", content.roll_back)
    r.add_get(PREFIX + "/audit", audit.audit)
    r.add_static(PREFIX + "/static", STATIC, append_version=False)
    app.on_response_prepare.append(secure_console_responses)
