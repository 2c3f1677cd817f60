"""The H5 pages in a real headless Chromium, driven over the Chrome DevTools Protocol (aiohttp websockets).

Chromium opens /h5/checkin, follows the OAuth redirect through the simulator's authorize page, shows the
page, clicks 立即签到 and saves a screenshot (390×844, a phone) under the test's tmp_path.

Chromium comes from Debian (``apt-get install -y chromium``) or ``SIYU_TEST_CHROMIUM``. Without it the
test is skipped — unless ``SIYU_TEST_REQUIRE_SERVICES`` is set (CI), where a missing browser fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.rig import Rig

WIDTH, HEIGHT = 390, 844
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--remote-debugging-port=0", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars",
)  # fmt: skip


def chromium_binary() -> str:
    for candidate in (os.environ.get("SIYU_TEST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    message = "no Chromium binary (apt-get install -y chromium, or set SIYU_TEST_CHROMIUM)"
    if os.environ.get("SIYU_TEST_REQUIRE_SERVICES"):
        pytest.fail(f"SIYU_TEST_REQUIRE_SERVICES is set but there is {message}")
    pytest.skip(message)


class Page:
    """Just enough CDP: send a command, wait for its answer (events are ignored)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        async with asyncio.timeout(30):
            while True:
                message = json.loads((await self._ws.receive()).data)
                if message.get("id") == msg_id:
                    if "error" in message:
                        raise AssertionError(f"{method}: {message['error']}")
                    result: dict[str, Any] = message.get("result", {})
                    return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                if value := await self.evaluate(expression):
                    return value
                await asyncio.sleep(0.1)


def _devtools_port(profile: Path) -> str:
    """Chromium writes the port it chose into ``<profile>/DevToolsActivePort`` once it listens."""
    try:
        return (profile / "DevToolsActivePort").read_text().split()[0]
    except (FileNotFoundError, IndexError):
        return ""


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Page]:
    profile = tmp_path / "chromium-profile"
    proc = await asyncio.create_subprocess_exec(
        chromium_binary(), *FLAGS, f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while True:
                if port := _devtools_port(profile):
                    break
                await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as listing:
                targets = await listing.json()
            target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                                deviceScaleFactor=1, mobile=True)  # fmt: skip
                yield page
    finally:
        if proc.returncode is None:
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data): a blank page has very few."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def _save(path: Path, data: bytes) -> None:
    path.write_bytes(data)


async def screenshot(page: Page, path: Path) -> bytes:
    shot = await page.send("Page.captureScreenshot", format="png")
    data = base64.b64decode(shot["data"])
    _save(path, data)
    width, height, distinct = png_facts(data)
    assert (width, height) == (WIDTH, HEIGHT)
    assert distinct > 16, "the screenshot is blank"
    return data


async def test_checkin_page_in_headless_chromium(h5_rig: Rig, tmp_path: Path) -> None:
    async with chromium(tmp_path) as page:
        await page.send("Page.enable")
        await page.send("Page.navigate", url=h5_rig.base_url + "/h5/checkin")  # → authorize → /h5/oauth → page
        await page.wait_for("location.pathname === '/h5/checkin' && document.readyState === 'complete'")
        assert await page.evaluate("document.querySelector('h1').textContent") == "每日签到"
        assert await page.evaluate("document.getElementById('streak').textContent") == "0"
        assert h5_rig.state.calls_to("sns/oauth2/access_token")[-1].response["openid"] == h5_rig.state.web_user
        await screenshot(page, tmp_path / "checkin-before.png")

        await page.evaluate("document.getElementById('action').click()")
        text = await page.wait_for("document.getElementById('result').textContent")
        assert "签到成功" in text
        assert await page.evaluate("document.getElementById('streak').textContent") == "1"
        assert await page.evaluate("document.getElementById('balance').textContent") == "5"
        assert await page.evaluate("document.getElementById('action').disabled") is True
        assert len(await screenshot(page, tmp_path / "checkin.png")) > 5000

        await page.send("Page.navigate", url=h5_rig.base_url + "/h5/lottery/unbox")
        await page.wait_for("location.pathname === '/h5/lottery/unbox' && document.readyState === 'complete'")
        await page.evaluate("document.getElementById('action').click()")
        drawn = await page.wait_for("document.getElementById('result').textContent")
        assert "恭喜" in drawn or "没有抽中" in drawn
        await screenshot(page, tmp_path / "lottery.png")
