"""H5 pages over HTTP (no browser): OAuth snsapi_base through the simulator, cookies, CSRF, API, rate limit."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from yarl import URL

from bot.clock import FrozenClock
from bot.config import ConfigError
from bot.rig import Rig
from handlers.interactions.h5.core import H5, SECURITY_HEADERS
from handlers.interactions.h5.session import OAUTH_COOKIE, SESSION_COOKIE, Session, Signer
from handlers.interactions.h5.tables import H5OAuthState
from handlers.interactions.lottery.batch import batcher_for
from handlers.interactions.tables import ReferralCode
from tests.interactions.helpers import H5_SECRET
from tests.support.apps import ClientFactory, start_bot
from tests.support.settings import make_settings


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([A-Za-z0-9_-]+)">', html)
    assert found is not None
    return found.group(1)


async def sign_in(rig: Rig, browser: aiohttp.ClientSession, path: str = "/h5/checkin") -> str:
    async with browser.get(rig.base_url + path) as page:
        assert page.status == 200 and str(page.url.path) == path
        return csrf_of(await page.text())


async def test_no_session_redirects_to_the_authorize_url_in_wechats_parameter_order(
    h5_rig: Rig, browser: aiohttp.ClientSession
) -> None:
    async with browser.get(h5_rig.base_url + "/h5/checkin", allow_redirects=False) as first:
        assert first.status == 302
        location = first.headers["Location"]
    redirect = quote(f"{h5_rig.base_url}/h5/oauth", safe="")
    appid = h5_rig.services.settings.official_account.app_id
    expected = (
        rf"^{re.escape(h5_rig.state_base_url)}/connect/oauth2/authorize\?appid={appid}&redirect_uri={redirect}"
        r"&response_type=code&scope=snsapi_base&state=[0-9a-f]{32}#wechat_redirect$"
    )
    assert re.match(expected, location), location


async def test_oauth_round_trip_signs_in_with_a_locked_down_cookie(h5_rig: Rig, browser: aiohttp.ClientSession) -> None:
    async with browser.get(h5_rig.base_url + "/h5/checkin", allow_redirects=False) as first:
        authorize = first.headers["Location"]
    async with browser.get(authorize, allow_redirects=False) as wechat:
        assert wechat.status == 302
        callback = wechat.headers["Location"]
    assert callback.startswith(h5_rig.base_url + "/h5/oauth?code=")
    async with browser.get(callback, allow_redirects=False) as back:
        assert back.status == 302 and back.headers["Location"] == "/h5/checkin"
        cookie = next(c for c in back.headers.getall("Set-Cookie") if c.startswith(SESSION_COOKIE + "="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "path=/h5" in lowered
    assert "secure" not in lowered  # public_base_url is http here
    exchange = h5_rig.state.last_call("sns/oauth2/access_token")
    assert exchange.query["grant_type"] == "authorization_code" and exchange.query["secret"] == "***"
    assert exchange.response["openid"] == h5_rig.state.web_user
    async with browser.get(h5_rig.base_url + "/h5/checkin") as page:
        html = await page.text()
        assert page.status == 200 and "每日签到" in html and "立即签到" in html
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    async with browser.get(callback, allow_redirects=False) as replay:  # a code works once
        assert replay.status in {400, 403}


async def test_checkin_api_needs_the_csrf_header_and_checks_in_once(
    h5_rig: Rig, browser: aiohttp.ClientSession
) -> None:
    csrf = await sign_in(h5_rig, browser)
    url = h5_rig.base_url + "/h5/api/checkin"
    async with browser.post(url) as no_token:
        assert no_token.status == 403
    async with browser.post(url, headers={"X-CSRF-Token": "0" * 32}) as wrong:
        assert wrong.status == 403
    async with browser.post(url, headers={"X-CSRF-Token": csrf}) as ok:
        body: dict[str, Any] = await ok.json()
    assert ok.status == 200 and body["status"] == "checked_in" and "签到成功" in body["text"]
    assert body["me"] == {"balance": 5, "streak": 1, "checked_in_today": True}
    async with browser.post(url, headers={"X-CSRF-Token": csrf}) as again:
        second = await again.json()
    assert second["status"] == "already" and second["me"]["balance"] == 5
    async with aiohttp.ClientSession() as stranger, stranger.get(h5_rig.base_url + "/h5/api/me") as anon:
        assert anon.status == 401


async def test_lottery_page_and_draw(h5_rig: Rig, browser: aiohttp.ClientSession) -> None:
    csrf = await sign_in(h5_rig, browser, "/h5/lottery/unbox")
    async with browser.post(h5_rig.base_url + "/h5/api/lottery/unbox/draw", headers={"X-CSRF-Token": csrf}) as r:
        body = await r.json()
    assert r.status == 200 and body["outcome"] in {"win", "lose"} and body["text"]
    assert batcher_for(h5_rig.services).batches == 1  # the tap joined the campaign's batch (own transaction)
    async with browser.post(h5_rig.base_url + "/h5/api/lottery/unbox/draw", headers={"X-CSRF-Token": csrf}) as r:
        again = await r.json()
    assert again["outcome"] == "limit_reached"  # unbox: one draw a day, counted across batches
    async with browser.get(h5_rig.base_url + "/h5/lottery/no_such_campaign") as missing:
        assert missing.status == 404


async def test_rate_limit_per_customer(h5_rig: Rig, browser: aiohttp.ClientSession) -> None:
    await sign_in(h5_rig, browser)
    statuses = []
    for _ in range(12):
        async with browser.get(h5_rig.base_url + "/h5/api/me") as r:
            statuses.append(r.status)
            if r.status == 429:
                assert int(r.headers["Retry-After"]) >= 1
    assert statuses[:10] == [200] * 10 and 429 in statuses[10:]


async def test_invite_code_is_made_by_a_post_with_the_csrf_header_never_by_a_get(
    h5_rig: Rig, browser: aiohttp.ClientSession
) -> None:
    csrf = await sign_in(h5_rig, browser)
    url = h5_rig.base_url + "/h5/api/invite"
    async with browser.get(url) as get:
        assert get.status == 405  # a link, a prefetch or an <img> must not create a code and a platform call
    async with browser.post(url) as no_token:
        assert no_token.status == 403
    assert await _count(h5_rig, ReferralCode) == 0
    async with browser.post(url, headers={"X-CSRF-Token": csrf}) as r:
        body = await r.json()
    # the follower is no WeCom friend yet: the code's 联系我 goes to the default channel's staff member
    assert body["ok"] and body["code"].startswith("ref_")
    async with browser.post(url, headers={"X-CSRF-Token": csrf}) as again:
        assert (await again.json())["code"] == body["code"]
    assert await _count(h5_rig, ReferralCode) == 1


async def _count(rig: Rig, model: Any) -> int:
    async with rig.services.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def _authorize(rig: Rig, browser: aiohttp.ClientSession) -> tuple[str, str]:
    """Start a sign-in: (WeChat's authorize URL, this browser's signed state cookie)."""
    async with browser.get(rig.base_url + "/h5/checkin", allow_redirects=False) as first:
        authorize = first.headers["Location"]
    cookie = browser.cookie_jar.filter_cookies(URL(rig.base_url + "/h5/oauth"))[OAUTH_COOKIE].value
    return authorize, cookie


async def _code_for(browser: aiohttp.ClientSession, authorize: str) -> str:
    async with browser.get(authorize, allow_redirects=False) as wechat:
        assert wechat.status == 302
        return wechat.headers["Location"]


async def test_an_oauth_state_works_once_even_with_its_cookie_and_a_fresh_code(
    h5_rig: Rig, browser: aiohttp.ClientSession
) -> None:
    authorize, cookie = await _authorize(h5_rig, browser)
    first, second = await _code_for(browser, authorize), await _code_for(browser, authorize)
    async with browser.get(first, allow_redirects=False) as ok:
        assert ok.status == 302 and ok.headers["Location"] == "/h5/checkin"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as replayer:
        replayer.cookie_jar.update_cookies({OAUTH_COOKIE: cookie}, URL(h5_rig.base_url + "/h5/"))
        async with replayer.get(second, allow_redirects=False) as replay:
            assert replay.status == 400 and SESSION_COOKIE not in replay.cookies
    assert await _count(h5_rig, H5OAuthState) == 0


async def test_an_oauth_state_expires_on_the_server_after_ten_minutes(
    h5_rig: Rig, browser: aiohttp.ClientSession, clock: FrozenClock
) -> None:
    authorize, _ = await _authorize(h5_rig, browser)
    clock.advance(601)  # the browser still holds the cookie: only the server knows the state is stale
    callback = await _code_for(browser, authorize)
    async with browser.get(callback, allow_redirects=False) as late:
        assert late.status == 400 and "链接已失效" in await late.text()
    await _authorize(h5_rig, browser)  # issuing a new state purges the expired one
    assert await _count(h5_rig, H5OAuthState) == 1


async def test_static_files_404s_and_405s_carry_the_security_headers(
    h5_rig: Rig, browser: aiohttp.ClientSession
) -> None:
    for method, path, status in [
        ("GET", "/h5/static/h5.js", 200),
        ("GET", "/h5/static/h5.css", 200),
        ("GET", "/h5/static/missing.js", 404),
        ("GET", "/h5/nowhere", 404),
        ("GET", "/h5/api/checkin", 405),
    ]:
        async with browser.request(method, h5_rig.base_url + path) as r:
            assert r.status == status, path
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value, (path, name)
            assert "Strict-Transport-Security" not in r.headers  # public_base_url is http here
    async with browser.get(h5_rig.base_url + "/healthz") as other:
        assert "Content-Security-Policy" not in other.headers  # only the /h5 subtree


async def test_behind_https_every_h5_answer_asks_for_https_only(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    server = {"session_secret": H5_SECRET, "public_base_url": "https://h5.example.com"}
    bot = await start_bot(aiohttp_client, make_settings(db_url, server=server), clock)
    for path in ("/h5/static/h5.css", "/h5/nowhere", "/h5/checkin"):
        r = await bot.client.get(path, allow_redirects=False)
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000", path
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_a_forged_or_expired_session_is_refused(clock: FrozenClock) -> None:
    signer = Signer(H5_SECRET)
    cookie = signer.session_cookie(42, clock.now())
    assert signer.read_session(cookie, clock.now()) is not None
    assert signer.read_session(cookie.replace("42.", "43.", 1), clock.now()) is None
    assert Signer("another-secret-another-secret-xx").read_session(cookie, clock.now()) is None
    from datetime import timedelta

    assert signer.read_session(cookie, clock.now() + timedelta(days=8)) is None


def test_session_expiry_and_clock_skew_edges(clock: FrozenClock) -> None:
    from datetime import timedelta

    signer = Signer(H5_SECRET)
    now = clock.now()
    cookie = signer.session_cookie(42, now)
    assert re.fullmatch(r"42\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", cookie)  # cookie-safe, no quoting
    assert signer.read_session(cookie, now + timedelta(days=7)) == Session(42, cookie)
    assert signer.read_session(cookie, now + timedelta(days=7, seconds=1)) is None
    assert signer.read_session(cookie, now - timedelta(seconds=60)) is not None  # another replica runs behind
    assert signer.read_session(cookie, now - timedelta(seconds=61)) is None
    assert signer.read_session(None, now) is None and signer.read_session("", now) is None


def test_csrf_and_oauth_signatures_are_bound_to_their_purpose(clock: FrozenClock) -> None:
    signer = Signer(H5_SECRET)
    session = Session(42, signer.session_cookie(42, clock.now()))
    other = Session(43, signer.session_cookie(43, clock.now()))
    token = signer.csrf_token(session)
    assert signer.csrf_ok(session, token)
    assert not signer.csrf_ok(other, token) and not signer.csrf_ok(session, None)
    assert not signer.csrf_ok(session, "0" * 32) and not signer.csrf_ok(session, "é")
    oauth = signer.oauth_cookie("abc123", "/h5/checkin")
    assert signer.read_oauth(oauth, "abc123") == "/h5/checkin"
    assert signer.read_oauth(oauth, "abc124") is None and signer.read_oauth(oauth, "状态") is None
    assert signer.read_oauth(oauth, None) is None and signer.read_oauth(None, "abc123") is None
    assert Signer("another-secret-another-secret-xx").read_oauth(oauth, "abc123") is None
    assert signer.read_session(oauth, clock.now()) is None  # a signature for one purpose is no other's
    sig = session.cookie.rpartition(".")[2]
    assert signer.read_oauth(session.cookie, "42") is None
    assert not signer.csrf_ok(session, sig)


def test_cookie_is_secure_behind_https(clock: FrozenClock) -> None:
    settings = SimpleNamespace(server=SimpleNamespace(public_base_url="https://h5.example.com"))
    h5 = H5(SimpleNamespace(settings=settings, clock=clock), actions=None, signer=Signer(H5_SECRET))  # type: ignore[arg-type]
    response = web.Response()
    h5.sign_in(response, 7)
    morsel = response.cookies[SESSION_COOKIE]
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"


def test_session_secret_is_checked(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.session_secret"):
        make_settings(sqlite_url, server={"session_secret": "short"})
    with pytest.raises(ConfigError, match=r"official_account\.app_id"):
        make_settings(sqlite_url, server={"session_secret": H5_SECRET}, official_account={"app_id": "", "token": ""})
