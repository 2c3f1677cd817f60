"""The console in a real headless Chromium (Playwright for Python with Debian's ``chromium``), as operators use it.

An operator signs in, finds the customer who arrived through the 包裹卡 channel code in the simulator,
adds a tag and the simulated WeCom records the ``externalcontact/mark_tag`` call; a viewer is refused an
edit; a POST without the CSRF token is refused; sign-in is throttled. Screenshots of every page at laptop
(1280 px) and phone (390 px) width go to ``$SIYU_CONSOLE_SCREENSHOTS`` (default: the test's tmp_path).

Without Chromium (or Playwright) the tests skip — unless ``SIYU_TEST_REQUIRE_SERVICES`` is set, then they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FrozenClock
from bot.config import Settings
from bot.content.edit import fields
from bot.rig import Rig
from handlers.api.tables import AuditEntry
from handlers.growth.synced import WECOM_TAG
from handlers.growth.tables import CustomerTag, SyncedObject
from handlers.integrations.endpoints import add_endpoint
from tests.console.support import PASSWORD, make_user
from tests.growth.helpers import sync_content
from tests.support.apps import rows, start_rig
from tests.support.settings import SHIPPED_CONTENT

PAGES = ("", "customers", "channels", "sop", "interactions", "events", "staff", "content", "audit")
SIZES = {"laptop": (1280, 800), "phone": (390, 844)}


def _missing(what: str) -> None:
    if os.environ.get("SIYU_TEST_REQUIRE_SERVICES"):
        pytest.fail(f"SIYU_TEST_REQUIRE_SERVICES is set but {what}")
    pytest.skip(what)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install playwright; no `playwright install` needed)")
    executable = os.environ.get("SIYU_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        _missing("there is no Chromium binary (apt-get install -y chromium, or set SIYU_TEST_CHROMIUM)")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        await launched.close()


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=3)
    await sync_content(rig, clock)
    yield rig
    await rig.close()


def shots_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SIYU_CONSOLE_SCREENSHOTS") or tmp_path / "screens")
    out.mkdir(parents=True, exist_ok=True)
    return out


async def sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/console/login")
    await page.get_by_label("邮箱").fill(email)
    await page.get_by_label("密码").fill(password)
    await page.get_by_role("button", name="登录").click()


async def test_an_operator_finds_a_customer_and_tags_them_on_wecom(browser: Any, rig: Rig, tmp_path: Path) -> None:
    arrived = await rig.sim.add_friend("lulu", state="pkgcard", name="陈小雨")
    await rig.sim.add_friend("axin", state="live_0611", name="王大山")
    await rig.drain()
    await make_user(rig.services, "op@example.com", "operator")
    base = rig.base_url
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await context.new_page()
    await page.goto(f"{base}/console/customers")
    assert page.url.startswith(f"{base}/console/login?next=")
    await page.get_by_label("邮箱").fill("op@example.com")
    await page.get_by_label("密码").fill(PASSWORD)
    await page.keyboard.press("Enter")  # the form works from the keyboard
    await page.wait_for_url(f"{base}/console/customers")
    await page.get_by_label("来源渠道").select_option("pkgcard")
    await page.get_by_role("button", name="搜索").click()
    links = page.locator("tbody th a")
    assert await links.count() == 1 and await links.inner_text() == "陈小雨"
    await links.click()
    assert arrived.external_userid in await page.inner_text("main")
    await page.get_by_label("新标签（分组/名称）").fill("兴趣/坚果")
    await page.get_by_role("button", name="添加标签").click()
    assert "已完成" in await page.inner_text("[role=status]")
    assert "兴趣/坚果" in await page.inner_text("#tags")
    await rig.drain()
    [nuts] = await rows(rig, SyncedObject, SyncedObject.kind == WECOM_TAG, SyncedObject.key == "兴趣/坚果")
    marks = [c for c in rig.state.calls_to("externalcontact/mark_tag") if nuts.remote_id in str(c.body)]
    assert [(c.errcode, c.body) for c in marks] == [
        (0, {"userid": "lulu", "external_userid": arrived.external_userid, "add_tag": [nuts.remote_id]})
    ]
    [entry] = [a for a in await rows(rig, AuditEntry) if a.key_name == "console:op@example.com"]
    assert "兴趣/坚果" in entry.after["tags"] and "兴趣/坚果" not in entry.before["tags"]  # type: ignore[index]
    await page.get_by_role("button", name="移除 兴趣/坚果").click()  # the × has an accessible name
    assert "兴趣/坚果" not in await page.inner_text("#tags")
    await rig.drain()
    removed = [c.body for c in rig.state.calls_to("externalcontact/mark_tag") if "remove_tag" in (c.body or {})]
    assert removed == [{"userid": "lulu", "external_userid": arrived.external_userid, "remove_tag": [nuts.remote_id]}]
    await context.close()


async def test_screenshots_of_every_page_at_laptop_and_phone_width(browser: Any, rig: Rig, tmp_path: Path) -> None:
    for userid, state, name in (("lulu", "pkgcard", "陈小雨"), ("axin", "live_0611", "王大山"), ("lulu", None, "")):
        await rig.sim.add_friend(userid, state=state, name=name)
    await rig.sim.follow(scene="poster_618")
    await rig.drain()
    await make_user(rig.services, "owner@example.com", "owner")
    async with rig.services.sessions() as s, s.begin():
        now = rig.services.clock.now()
        await add_endpoint(s, "http://127.0.0.1:9/crm", "customer.*", ordered=True, allow_private=True, now=now)
    out = shots_dir(tmp_path)
    for size, (width, height) in SIZES.items():
        context = await browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
        page = await context.new_page()
        await page.goto(f"{rig.base_url}/console/login")
        await page.screenshot(path=str(out / f"login-{size}.png"))
        await sign_in(page, rig.base_url, "owner@example.com")
        if size == "laptop":  # something in the audit log
            await page.goto(f"{rig.base_url}/console/customers?channel=pkgcard")
            await page.locator("tbody th a").first.click()
            await page.get_by_label("新标签（分组/名称）").fill("兴趣/坚果")
            await page.get_by_role("button", name="添加标签").click()
        for name in PAGES:
            answer = await page.goto(f"{rig.base_url}/console/{name}")
            assert answer is not None and answer.status == 200, name
            await page.screenshot(path=str(out / f"{name or 'overview'}-{size}.png"), full_page=True)
        await page.goto(f"{rig.base_url}/console/customers")
        await page.locator("tbody th a").first.click()
        await page.screenshot(path=str(out / f"customer-{size}.png"), full_page=True)
        # Nothing is wider than the screen at phone width (tables scroll inside their own box).
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        await context.close()
    expected = [
        f"{name}-{size}.png" for name in (*(p or "overview" for p in PAGES), "login", "customer") for size in SIZES
    ]
    assert all((out / name).stat().st_size > 0 for name in expected)


async def test_a_viewer_is_refused_an_edit_and_a_post_without_csrf_is_refused(browser: Any, rig: Rig) -> None:
    friend = await rig.sim.add_friend("lulu", state="pkgcard", name="陈小雨")
    await rig.drain()
    await make_user(rig.services, "viewer@example.com", "viewer")
    await make_user(rig.services, "op@example.com", "operator")
    base = rig.base_url
    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    await sign_in(page, base, "viewer@example.com")
    await page.goto(f"{base}/console/customers?q=陈小雨")
    await page.locator("tbody th a").click()
    assert await page.get_by_label("新标签（分组/名称）").count() == 0  # no edit form for a viewer
    path = page.url.removeprefix(base)
    token = await page.locator("input[name=csrf]").first.get_attribute("value")
    refused = await page.request.post(f"{base}{path}/tags", form={"tag": "兴趣/坚果", "csrf": token})
    assert refused.status == 403 and "只读" in await refused.text()
    for code in ("pkgcard", "mp_poster_618"):  # WeCom's image fetched from WeCom; the OA code drawn here
        qr = await page.request.get(f"{base}/console/channels/{code}/qr")
        assert qr.status == 200 and (await qr.body()).startswith(b"\x89PNG\r\n\x1a\n"), code
        assert qr.headers["content-disposition"] == f'attachment; filename="{code}.png"'
    await context.close()

    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    await sign_in(page, base, "op@example.com")
    await page.goto(f"{base}{path}")
    bare = await page.request.post(f"{base}{path}/tags", form={"tag": "兴趣/坚果"})
    assert bare.status == 403 and "CSRF" in await bare.text()
    await rig.drain()
    tagged = await rows(rig, CustomerTag, CustomerTag.tag == "兴趣/坚果")
    assert tagged == [] and friend.external_userid
    assert not any(a.key_name.startswith("console:") for a in await rows(rig, AuditEntry))
    await context.close()


async def test_sign_in_is_throttled_in_the_browser(browser: Any, rig: Rig) -> None:
    await make_user(rig.services, "op@example.com", "operator")
    context = await browser.new_context(locale="zh-CN")
    page = await context.new_page()
    for _ in range(5):
        await sign_in(page, rig.base_url, "op@example.com", "not the password")
        assert "不正确" in await page.inner_text("[role=alert]")
    await sign_in(page, rig.base_url, "op@example.com")
    assert "尝试次数过多" in await page.inner_text("[role=alert]")
    await context.close()


def _welcome_text_keys(code: str = "welcome_pkgcard") -> list[str]:
    """The form keys of a message's variant texts in the shipped messages.toml."""
    found = fields((SHIPPED_CONTENT / "messages.toml").read_text(encoding="utf-8"))
    index = next(
        f.key.split(".")[0] for f in found if f.key.endswith("].id") and f.value == code and "variants" not in f.key
    )
    return [f.key for f in found if f.key.startswith(f"{index}.variants[") and f.key.endswith("].text")]


async def test_an_admin_edits_a_welcome_in_a_draft_publishes_it_and_the_next_friend_gets_it(
    browser: Any, rig: Rig, tmp_path: Path
) -> None:
    await make_user(rig.services, "owner@example.com", "owner")
    await make_user(rig.services, "op@example.com", "operator")
    base, new_text = rig.base_url, "双12新版欢迎语：{nickname}，你好！"
    keys = _welcome_text_keys()
    assert len(keys) == 2  # the A/B variants of the 包裹卡 welcome
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await context.new_page()
    await sign_in(page, base, "owner@example.com")
    await page.goto(f"{base}/console/content")
    await page.get_by_role("button", name="把当前目录发布为第一个版本").click()
    assert "已完成" in await page.inner_text("[role=status]")
    await page.get_by_label("草稿说明").fill("双12 包裹卡欢迎语")
    await page.get_by_role("button", name="新建草稿").click()
    draft_url = page.url
    await page.goto(f"{draft_url}?file=messages.toml")
    weight = keys[0].replace(".text", ".weight")
    await page.get_by_label(weight, exact=True).fill("half")  # a wrong value: refused, shown at its field
    await page.get_by_role("button", name="保存到草稿").click()
    error = page.locator(".has-error")
    assert (
        await error.count() == 1 and weight in await error.inner_text() and "whole number" in await error.inner_text()
    )
    await page.goto(f"{draft_url}?file=messages.toml")
    for key in keys:
        await page.get_by_label(key, exact=True).fill(new_text)
    await page.get_by_role("button", name="保存到草稿").click()
    assert "已保存" in await page.inner_text("[role=status]")
    assert "双12新版欢迎语：朋友，你好！" in await page.inner_text("main")  # the preview, with the fallback
    assert "+text = " in await page.inner_text("details")  # the diff against the live revision
    out = shots_dir(tmp_path)
    await page.screenshot(path=str(out / "content-draft-laptop.png"))  # the top: files, fields, problems
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=str(out / "content-draft-phone.png"))
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390

    operator = await (await browser.new_context(locale="zh-CN")).new_page()
    await sign_in(operator, base, "op@example.com")
    await operator.goto(draft_url)
    assert await operator.get_by_role("button", name="发布").count() == 0  # publishing needs the admin scope
    token = await operator.locator("input[name=csrf]").first.get_attribute("value")
    refused = await operator.request.post(f"{draft_url}/publish", form={"csrf": token})
    assert refused.status == 403 and rig.services.reloader.revision != int(draft_url.rsplit("/", 1)[1])

    await page.get_by_role("button", name="发布").click()
    assert "已完成" in await page.inner_text("[role=status]")
    assert rig.services.reloader.revision == int(draft_url.rsplit("/", 1)[1])
    before = len(rig.state.calls_to("externalcontact/send_welcome_msg"))
    added = await rig.sim.add_friend("lulu", state="pkgcard", name="陈小雨")
    await rig.drain()
    [welcome] = rig.state.calls_to("externalcontact/send_welcome_msg")[before:]
    assert welcome.body["welcome_code"] == added.welcome_code
    assert welcome.body["text"]["content"].startswith("双12新版欢迎语：")
    resources = {a.resource for a in await rows(rig, AuditEntry) if a.key_name == "console:owner@example.com"}
    assert {"content/live", f"content/drafts/{draft_url.rsplit('/', 1)[1]}/messages.toml"} <= resources
    await context.close()
