"""Restart safety: receipts claimed but not finished are handled exactly once after a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.models import Customer, Receipt
from tests.support.settings import MP_APPID, MP_TOKEN, REPO_ROOT, WECOM_AES, WECOM_CORP, WECOM_TOKEN
from tests.support.wire import contact_event, wecom_request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(path: Path, db_url: str, port: int) -> None:
    path.write_text(
        f"""
[server]
port = {port}
[database]
url = "{db_url}"
[wecom]
corp_id = "{WECOM_CORP}"
token = "{WECOM_TOKEN}"
encoding_aes_key = "{WECOM_AES}"
secret = "s"
api_base_url = "http://127.0.0.1:9/wecom"
[official_account]
app_id = "{MP_APPID}"
token = "{MP_TOKEN}"
allow_plain = true
[inbox]
sweep_interval_seconds = 0.2
[logging]
level = "WARNING"
""",
        encoding="utf-8",
    )


async def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "server exited early"
            try:
                async with http.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not become healthy")


def _spawn(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.kernel.proc_server", str(config), *extra], env=env)


async def _count(engine: AsyncEngine, model: type, *where: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


@pytest.mark.slow
async def test_kill_9_after_ack_before_handler_then_exactly_once(
    tmp_path: Path, db_url: str, engine: AsyncEngine
) -> None:
    port = _free_port()
    config = tmp_path / "config.toml"
    _write_config(config, db_url, port)
    base = f"http://127.0.0.1:{port}"
    xml = contact_event("add_external_contact", "wmCRASH", 1700000000, State="pkgcard")

    first = _spawn(config, "stall")
    try:
        await _wait_healthy(base, first)
        params, body = wecom_request(xml)
        async with (
            aiohttp.ClientSession() as http,
            http.post(base + "/callback/wecom", params=params, data=body) as r,
        ):
            assert r.status == 200  # acked: the receipt is committed
        assert await _count(engine, Receipt, Receipt.status == "pending") == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert await _count(engine, Customer) == 0  # the handler never committed

    second = _spawn(config)
    try:
        await _wait_healthy(base, second)
        deadline = time.monotonic() + 15
        while await _count(engine, Receipt, Receipt.status == "done") < 1:
            assert time.monotonic() < deadline, "receipt was not recovered"
            await asyncio.sleep(0.1)
        # WeChat retries the same callback after the crash: nothing happens twice.
        params, body = wecom_request(xml)
        async with (
            aiohttp.ClientSession() as http,
            http.post(base + "/callback/wecom", params=params, data=body) as r,
        ):
            assert r.status == 200
        await asyncio.sleep(1.5)  # longer than the lease: a second sweep must find nothing to do
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    assert await _count(engine, Receipt) == 1
    assert await _count(engine, Customer, Customer.external_userid == "wmCRASH") == 1
    async with engine.connect() as conn:
        attempts = (await conn.execute(select(Receipt.attempts))).scalar_one()
    assert attempts == 1
