"""Sign-in, sessions, CSRF, roles, throttling and headers of the console (no browser: aiohttp's client)."""

from __future__ import annotations

from datetime import timedelta

from bot.db.models import Customer
from handlers.api.tables import AuditEntry
from handlers.console.tables import ConsoleSession
from handlers.growth.tables import CustomerTag
from handlers.staff.tables import LossAlert, StaffAudit, StaffTransfer
from tests.console.support import PASSWORD, make_user, page_csrf, sign_in
from tests.support.apps import RunningBot, rows


async def _customer(bot: RunningBot) -> int:
    now = bot.services.clock.now()
    async with bot.services.sessions() as s, s.begin():
        c = Customer(external_userid="wmConsole01", name="小周", created_at=now, updated_at=now, wecom_friend=True)
        s.add(c)
        await s.flush()
        return c.id


async def test_pages_need_a_session_and_render_for_an_owner(bot: RunningBot) -> None:
    client = bot.client
    first = await client.get("/console/customers?q=x", allow_redirects=False)
    assert first.status == 303 and first.headers["Location"].startswith("/console/login?next=")
    await make_user(bot.services, "Owner@Example.com", "owner")
    signed = await sign_in(client, "owner@example.com")
    assert signed.status == 303 and signed.headers["Location"] == "/console/"
    cookie = signed.cookies["siyu_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
    cid = await _customer(bot)
    for path in ("/console/", "/console/?period=today", "/console/?period=30", "/console/customers",
                 f"/console/customers/{cid}", "/console/channels", "/console/sop", "/console/interactions",
                 "/console/events", "/console/events?status=failed", "/console/audit", "/console/content",
                 "/console/staff",
                 "/console/content?file=messages/drips.toml"):  # fmt: skip
        answer = await client.get(path)
        html = await answer.text()
        assert answer.status == 200, (path, html[:500])
        assert '<html lang="zh-CN">' in html and "owner@example.com" in html
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.get("/console/customers/99999")).status == 404
    shown = await (await client.get("/console/content")).text()
    assert "暂无版本" in shown and "把当前目录发布为第一个版本" in shown  # nothing published yet: the directory runs
    assert (await client.get("/console/content/drafts/999")).status == 404
    css = await client.get("/console/static/console.css")
    assert css.status == 200 and "Content-Security-Policy" in css.headers


async def test_a_post_without_the_csrf_token_changes_nothing(bot: RunningBot) -> None:
    await make_user(bot.services, "op@example.com", "operator")
    await sign_in(bot.client, "op@example.com")
    cid = await _customer(bot)
    bare = await bot.client.post(f"/console/customers/{cid}/tags", data={"tag": "兴趣/坚果"}, allow_redirects=False)
    assert bare.status == 403 and "CSRF" in await bare.text()
    wrong = await bot.client.post(
        f"/console/customers/{cid}/tags", data={"tag": "兴趣/坚果", "csrf": "forged"}, allow_redirects=False
    )
    assert wrong.status == 403
    assert await rows(bot, CustomerTag) == [] and await rows(bot, AuditEntry) == []
    token = await page_csrf(bot.client)
    ok = await bot.client.post(
        f"/console/customers/{cid}/tags", data={"tag": "兴趣/坚果", "csrf": token}, allow_redirects=False
    )
    assert ok.status == 303
    assert [t.tag for t in await rows(bot, CustomerTag)] == ["兴趣/坚果"]
    [entry] = await rows(bot, AuditEntry)
    assert (entry.key_name, entry.key_id, entry.resource) == ("console:op@example.com", None, f"customer:{cid}")
    assert entry.before == {"tags": []} and entry.after == {"tags": ["兴趣/坚果"]}
    bad = await bot.client.post(
        f"/console/customers/{cid}/tags", data={"tag": "no-group", "csrf": token}, allow_redirects=False
    )
    assert bad.status == 400 and "tags[0]" in await bad.text()


async def test_a_viewer_reads_but_is_refused_every_edit(bot: RunningBot) -> None:
    await make_user(bot.services, "viewer@example.com", "viewer")
    await sign_in(bot.client, "viewer@example.com")
    cid = await _customer(bot)
    profile = await (await bot.client.get(f"/console/customers/{cid}")).text()
    assert "小周" in profile and 'action="/console/customers/' not in profile  # no edit forms shown
    token = await page_csrf(bot.client)
    refused = await bot.client.post(f"/console/customers/{cid}/tags", data={"tag": "兴趣/坚果", "csrf": token})
    assert refused.status == 403 and "只读" in await refused.text()
    assert (await bot.client.post("/console/events/1/retry", data={"csrf": token})).status == 403
    assert (await bot.client.get("/console/audit")).status == 403  # the audit log needs the admin scope
    assert await rows(bot, CustomerTag) == []


async def test_sign_in_is_throttled_and_disabled_users_and_expired_sessions_are_out(bot: RunningBot) -> None:
    await make_user(bot.services, "ops@example.com", "operator")
    statuses = [(await sign_in(bot.client, "ops@example.com", "wrong password")).status for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    throttled = await sign_in(bot.client, "ops@example.com")  # even the right password waits now
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) > 0
    await make_user(bot.services, "other@example.com", "viewer")
    assert (await sign_in(bot.client, "other@example.com")).status == 303
    assert (await bot.client.get("/console/", allow_redirects=False)).status == 200
    bot.services.clock.advance(timedelta(hours=13))  # type: ignore[attr-defined]
    assert (await bot.client.get("/console/", allow_redirects=False)).status == 303
    assert (await sign_in(bot.client, "other@example.com")).status == 303
    token = await page_csrf(bot.client)
    out = await bot.client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
    assert out.status == 303 and (await bot.client.get("/console/", allow_redirects=False)).status == 303
    assert len(await rows(bot, ConsoleSession)) == 0  # the expired one went with the next sign-in


async def test_the_login_form_needs_its_csrf_cookie(bot: RunningBot) -> None:
    await make_user(bot.services, "a@example.com", "admin")
    forged = await bot.client.post(
        "/console/login", data={"email": "a@example.com", "password": PASSWORD, "csrf": "x"}, allow_redirects=False
    )
    assert forged.status == 403 and "siyu_console" not in forged.cookies
    offsite = await bot.client.post("/console/login", data={"email": "a@example.com", "password": PASSWORD})
    assert offsite.status == 403


async def test_the_staff_page_shows_handovers_pending_customers_and_loss_alerts(bot: RunningBot) -> None:
    now = bot.services.clock.now()
    cid = await _customer(bot)
    async with bot.services.sessions() as s, s.begin():
        s.add_all([
            StaffTransfer(batch="b1", kind="resigned", from_userid="zhang", to_userid="li", external_userid="wmA",
                          customer_id=cid, state="waiting", requested_at=now, takeover_at=now + timedelta(hours=24)),
            StaffTransfer(batch="b1", kind="resigned", from_userid="zhang", to_userid="li", external_userid="wmB",
                          state="refused", requested_at=now, finished_at=now),
            StaffAudit(batch="b1", command="transfer", from_userid="zhang", rule="to:li", customers=2, groups=0,
                       plan={"li": 2}, at=now),
            LossAlert(staff_userid="lulu", customer_id=cid, lost_at=now, state="pending"),
        ])  # fmt: skip
    await make_user(bot.services, "viewer@example.com", "viewer")
    await sign_in(bot.client, "viewer@example.com")
    answer = await bot.client.get("/console/staff")
    html = await answer.text()
    assert answer.status == 200
    assert "离职继承" in html and "zhang → li" in html and "等待接替" in html and "客户拒绝" in html
    assert f'href="/console/customers/{cid}">wmA</a>' in html  # the waiting customer, linked
    assert "2 位客户，0 个群" in html and "lulu" in html
