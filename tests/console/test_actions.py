"""Every console write goes through the admin API's function or the ``webhooks`` commands' and is audited
as ``console:<email>``: drips, event retry, lottery kill/resume/verify and winners CSV, webhook endpoints."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import FrozenClock
from bot.db.models import Customer, Receipt
from handlers.api.tables import AuditEntry
from handlers.integrations.endpoints import add_endpoint
from handlers.integrations.tables import WebhookDelivery, WebhookEndpoint
from handlers.interactions.content import interactions_of
from handlers.interactions.lottery.state import ensure_campaign
from handlers.interactions.tables import Draw
from handlers.sop.tables import DripEnrolment
from tests.console.support import make_user, page_csrf, sign_in
from tests.support.apps import RunningBot, rows


async def _signed_in(bot: RunningBot, role: str = "admin") -> str:
    await make_user(bot.services, f"{role}@example.com", role)
    assert (await sign_in(bot.client, f"{role}@example.com")).status == 303
    return await page_csrf(bot.client)


async def _post(bot: RunningBot, path: str, csrf: str, **form: str) -> int:
    answer = await bot.client.post(path, data={"csrf": csrf, **form}, allow_redirects=False)
    return answer.status


async def _audit(bot: RunningBot) -> list[tuple[str, str]]:
    return [(a.key_name, a.resource) for a in await rows(bot, AuditEntry)]


async def test_drips_start_and_stop_from_the_profile(bot: RunningBot) -> None:
    csrf = await _signed_in(bot, "operator")
    now = bot.services.clock.now()
    async with bot.services.sessions() as s, s.begin():
        c = Customer(openid="oDrip01", name="小林", created_at=now, updated_at=now, mp_follower=True)
        s.add(c)
        await s.flush()
        cid = c.id
    profile = await (await bot.client.get(f"/console/customers/{cid}")).text()
    assert f"/console/customers/{cid}/drips/mp_recall/start" in profile
    assert await _post(bot, f"/console/customers/{cid}/drips/mp_recall/start", csrf) == 303
    assert await _post(bot, f"/console/customers/{cid}/drips/mp_recall/start", csrf) == 409  # drips run once
    assert await _post(bot, f"/console/customers/{cid}/drips/no_such_drip/start", csrf) == 404
    assert await _post(bot, f"/console/customers/{cid}/drips/mp_recall/stop", csrf) == 303
    [enrolment] = await rows(bot, DripEnrolment)
    assert (enrolment.drip_id, enrolment.state) == ("mp_recall", "stopped")
    assert enrolment.stop_reason == "api:console:operator@example.com"
    who = "console:operator@example.com"
    assert await _audit(bot) == [(who, f"customer:{cid}/drip:mp_recall")] * 2


async def test_a_failed_event_retried_by_an_admin_only(bot: RunningBot) -> None:
    now = bot.services.clock.now()
    async with bot.services.sessions() as s, s.begin():
        r = Receipt(dedup_key="t:1", platform="wecom", kind="change_external_contact", payload={}, received_at=now,
                    status="failed", attempts=5, lease_until=now, finished_at=now, error="boom")  # fmt: skip
        s.add(r)
        await s.flush()
        rid = r.id
    csrf = await _signed_in(bot, "operator")
    page = await (await bot.client.get("/console/events?status=failed")).text()
    assert "boom" in page and f"/console/events/{rid}/retry" not in page  # an operator sees no retry button
    assert await _post(bot, f"/console/events/{rid}/retry", csrf) == 403
    await bot.client.post("/console/logout", data={"csrf": csrf})
    csrf = await _signed_in(bot, "admin")
    assert f"/console/events/{rid}/retry" in await (await bot.client.get("/console/events?status=failed")).text()
    assert await _post(bot, f"/console/events/{rid}/retry", csrf) == 303
    assert (await rows(bot, Receipt))[0].status == "pending"
    assert await _post(bot, f"/console/events/{rid}/retry", csrf) == 409  # only a failed event is retried
    assert await _audit(bot) == [("console:admin@example.com", f"receipt:{rid}")]


async def test_lottery_kill_resume_winners_csv_and_verify(bot: RunningBot, clock: FrozenClock) -> None:
    services = bot.services
    campaign = interactions_of(services.content).campaigns[0]
    csrf = await _signed_in(bot, "admin")
    base = f"/console/lottery/{campaign.id}"
    assert await _post(bot, f"{base}/kill", csrf, reason="刷奖") == 409  # no state yet, as the API says
    async with services.sessions() as s, s.begin():
        await ensure_campaign(s, services.content, campaign, clock.now())
        prize = next(p.id for p in campaign.prizes if p.kind.value != "none")
        s.add(Draw(campaign_id=campaign.id, ticket_id=1, customer_id=7, seq=1, roll="0" * 64, prize_id=prize,
                   drawn_at=clock.now()))  # fmt: skip
    assert await _post(bot, f"{base}/kill", csrf) == 400  # a reason is required
    assert await _post(bot, f"{base}/kill", csrf, reason="刷奖") == 303
    assert "刷奖" in await (await bot.client.get("/console/interactions")).text()
    assert await _post(bot, f"{base}/resume", csrf) == 303
    csv = await bot.client.get(f"{base}/winners.csv")
    lines = (await csv.read()).decode("utf-8-sig").splitlines()
    assert csv.headers["Content-Disposition"].startswith("attachment")
    assert lines[0] == "draw_id,seq,customer_id,prize_id,drawn_at" and lines[1].startswith(f"1,1,7,{prize},")
    assert await _post(bot, f"{base}/verify", csrf) == 409  # the seed stays secret until the end
    clock.set(campaign.ends_at + timedelta(seconds=1))  # days later: the 12-hour session is over
    assert await _post(bot, f"{base}/verify", csrf) == 401
    assert (await sign_in(bot.client, "admin@example.com")).status == 303
    verified = await bot.client.post(f"{base}/verify", data={"csrf": await page_csrf(bot.client)})
    assert verified.status == 200 and "seed_sha256" in await verified.text()
    assert [r for _, r in await _audit(bot)] == [f"campaign:{campaign.id}"] * 3


async def test_webhook_endpoints_disabled_enabled_and_a_delivery_replayed(bot: RunningBot) -> None:
    now = bot.services.clock.now()
    async with bot.services.sessions() as s, s.begin():
        created = await add_endpoint(s, "http://127.0.0.1:9/hook", "*", ordered=False, allow_private=True, now=now)
        s.add(WebhookDelivery(endpoint_id=created.id, event_type="customer.created", body="{}", state="failed",
                              attempts=3, created_at=now, next_attempt_at=now))  # fmt: skip
    csrf = await _signed_in(bot, "admin")
    page = await (await bot.client.get("/console/events")).text()
    assert "http://127.0.0.1:9/hook" in page and "msg_1" in page and "whsec_" not in page
    assert await _post(bot, f"/console/webhooks/{created.id}/disable", csrf) == 303
    assert (await rows(bot, WebhookEndpoint))[0].enabled is False
    assert await _post(bot, f"/console/webhooks/{created.id}/enable", csrf) == 303
    assert (await rows(bot, WebhookEndpoint))[0].enabled is True
    assert await _post(bot, "/console/webhooks/999/enable", csrf) == 404
    assert await _post(bot, "/console/webhooks/deliveries/1/replay", csrf) == 303
    assert (await rows(bot, WebhookDelivery))[0].state == "pending"
    assert await _post(bot, "/console/webhooks/deliveries/999/replay", csrf) == 409
    resources = [r for _, r in await _audit(bot)]
    assert resources == [f"webhook_endpoint:{created.id}"] * 2 + ["webhook_delivery:1"]


async def test_a_channel_never_synced_has_no_qr(bot: RunningBot) -> None:
    await _signed_in(bot, "viewer")
    assert (await bot.client.get("/console/channels/pkgcard/qr")).status == 404
