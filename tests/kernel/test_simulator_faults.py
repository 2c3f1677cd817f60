"""Fault injection in the simulator (``state.faults``): the platform acts but the answer is lost (reset /
timeout), or refuses before acting; and the callback pusher's retry pacing and round-robin targets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.simulator import CallbackPusher, RunningSimulator, SimState, start_simulator, wecom_target
from bot.simulator.models import WelcomeCode

WELCOME = "externalcontact/send_welcome_msg"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(SimState(seed=11))
    yield running
    await running.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _token(http: aiohttp.ClientSession, sim: RunningSimulator) -> str:
    acc = sim.state.accounts
    params = {"corpid": acc.corp_id, "corpsecret": acc.corp_secret}
    async with http.get(sim.wecom_api_base + "/cgi-bin/gettoken", params=params) as r:
        return str((await r.json())["access_token"])


def _welcome_code(state: SimState) -> tuple[str, str]:
    contact = state.add_contact("lulu")
    code = state.new_id("", 43)
    state.welcome_codes[code] = WelcomeCode(code, "lulu", contact.external_userid, state.now())
    return code, contact.external_userid


async def _post(
    http: aiohttp.ClientSession, sim: RunningSimulator, api: str, body: dict[str, Any], timeout: float = 5.0
) -> dict[str, Any]:
    params = {"access_token": await _token(http, sim)}
    url = f"{sim.wecom_api_base}/cgi-bin/{api}"
    async with http.post(url, params=params, json=body, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        answer: dict[str, Any] = await r.json()
        return answer


async def test_nothing_changes_unless_a_fault_is_armed(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    code, ext = _welcome_code(sim.state)
    answer = await _post(http, sim, WELCOME, {"welcome_code": code, "text": {"content": "hi"}})
    assert answer["errcode"] == 0
    assert sim.state.last_call(WELCOME).answer_lost is None and sim.state.faults.lost == []
    assert len(sim.state.contacts[ext].welcomes) == 1


async def test_reset_serves_the_call_then_drops_the_connection(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    state = sim.state
    code, ext = _welcome_code(state)
    state.faults.lose_answer(WELCOME, mode="reset")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _post(http, sim, WELCOME, {"welcome_code": code, "text": {"content": "hi"}})
    assert state.contacts[ext].welcomes == [{"welcome_code": code, "text": {"content": "hi"}}]  # it acted
    [call] = state.calls_to(WELCOME)
    assert (call.errcode, call.answer_lost) == (0, "reset")
    assert state.faults.lost == [(WELCOME, "reset")] and state.faults.armed == 0
    # The caller repeats: the code is single-use, the platform says so, nothing is delivered twice.
    again = await _post(http, sim, WELCOME, {"welcome_code": code, "text": {"content": "hi"}})
    assert again["errcode"] == 41051
    assert len(state.contacts[ext].welcomes) == 1


async def test_timeout_holds_the_answer_past_the_callers_timeout(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    state = sim.state
    state.add_staff("lulu")
    state.faults.lose_answer("message/send", mode="timeout", delay=1.0)
    body = {"touser": "lulu", "msgtype": "text", "agentid": state.accounts.agent_id, "text": {"content": "x"}}
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await _post(http, sim, "message/send", body, timeout=0.3)
    assert time.monotonic() - began < 0.9
    assert [d.to for d in state.delivered if d.api == "message/send"] == ["lulu"]  # delivered all the same
    assert state.last_call("message/send").answer_lost == "timeout"
    await asyncio.sleep(0.8)  # the held answer goes out into a closed connection without an error


async def test_times_counts_calls_then_answers_normally(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    state = sim.state
    state.add_staff("lulu")
    state.faults.lose_answer("/cgi-bin/message/send", times=2)
    body = {"touser": "lulu", "msgtype": "text", "agentid": state.accounts.agent_id, "text": {"content": "x"}}
    for _ in range(2):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await _post(http, sim, "message/send", body)
    assert (await _post(http, sim, "message/send", body))["errcode"] == 0
    assert [c.answer_lost for c in state.calls_to("message/send")] == ["reset", "reset", None]
    assert len([d for d in state.delivered if d.api == "message/send"]) == 3


async def test_fail_before_refuses_without_acting(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    state = sim.state
    code, ext = _welcome_code(state)
    state.faults.fail_before(WELCOME, times=1, errcode=45009)
    body = {"welcome_code": code, "text": {"content": "hi"}}
    assert (await _post(http, sim, WELCOME, body))["errcode"] == 45009
    assert state.contacts[ext].welcomes == []
    assert (await _post(http, sim, WELCOME, body))["errcode"] == 0
    assert len(state.contacts[ext].welcomes) == 1


def test_bad_arguments_are_refused() -> None:
    faults = SimState().faults
    with pytest.raises(ValueError, match="mode"):
        faults.lose_answer("message/send", mode="lost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        faults.lose_answer("message/send", times=0)


async def test_pusher_paces_retries_and_rotates_over_alternates(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    """A refused connection is a failed attempt; the retry waits ``retry_delay`` and, with a load balancer
    in front of two replicas, reaches the other one."""
    seen: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="success")

    app = web.Application()
    app.router.add_post("/callback/wecom", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    live = f"http://127.0.0.1:{runner.addresses[0][1]}/callback/wecom"
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/callback/wecom"
    try:
        target = wecom_target(sim.state.accounts, dead)
        pusher = CallbackPusher(http, target, clock=sim.state.clock, retry_delay=0.3, alternates=[live])
        began = time.monotonic()
        delivery = await pusher.push("<xml><ToUserName><![CDATA[x]]></ToUserName></xml>")
        assert delivery.ok and delivery.tries == 2
        assert [a.url for a in delivery.attempts] == [dead, live]
        assert delivery.attempts[0].status is None and "Connect" in (delivery.attempts[0].error or "")
        assert time.monotonic() - began >= 0.3
        assert seen == ["/callback/wecom"]
    finally:
        await runner.cleanup()
