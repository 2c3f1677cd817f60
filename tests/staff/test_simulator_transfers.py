"""The simulated transfer APIs (docs/platform.md#staff-transfers): the unassigned list's pages, the 100-id
limit, per-customer errcodes, the 24-hour takeover on the simulator's clock, result statuses, groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.clock import FrozenClock
from bot.simulator import SimState, make_sim_app
from bot.simulator import wecom_transfers as transfers
from tests.kernel.test_simulator_lists import wecom, wecom_token

START = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def state(clock: FrozenClock) -> SimState:
    s = SimState(clock=clock, seed=7)
    for i in range(5):
        s.add_contact("leaver", f"wm{i}")
    s.add_staff("heir")
    s.add_contact("stay", "wmS")
    s.add_group("leaver", chat_id="wrL")
    s.add_group("stay", chat_id="wrS")
    return s


@pytest.fixture
async def client(aiohttp_client: Any, state: SimState) -> TestClient[Any, Any]:
    c: TestClient[Any, Any] = await aiohttp_client(make_sim_app(state))
    return c


async def test_a_resigned_handover_takes_24_hours_unless_refused(
    client: TestClient[Any, Any], state: SimState, clock: FrozenClock
) -> None:
    token = await wecom_token(client, state)
    body = {"handover_userid": "leaver", "takeover_userid": "heir", "external_userid": ["wm0", "wm1", "wmS"]}
    refused = await wecom(client, token, "externalcontact/resigned/transfer_customer", body)
    assert refused["errcode"] == 40097  # leaver has not left yet
    assert (await client.post("/_sim/staff/leaver/depart")).status == 200
    assert (await client.post("/_sim/staff/nobody/depart")).status == 404

    page1 = await wecom(client, token, "externalcontact/get_unassigned_list", {"page_size": 3})
    assert [i["external_userid"] for i in page1["info"]] == ["wm0", "wm1", "wm2"] and page1["is_last"] is False
    page2 = await wecom(client, token, "externalcontact/get_unassigned_list", {"cursor": page1["next_cursor"]})
    assert [i["external_userid"] for i in page2["info"]] == ["wm3", "wm4"] and page2["is_last"] is True
    assert page2["info"][0]["dimission_time"] == int(START.timestamp())
    too_big = await wecom(client, token, "externalcontact/get_unassigned_list", {"page_size": 1001})
    assert too_big["errcode"] == 40058

    started = await wecom(client, token, "externalcontact/resigned/transfer_customer", body)
    assert started["customer"] == [
        {"external_userid": "wm0", "errcode": 0},
        {"external_userid": "wm1", "errcode": 0},
        {"external_userid": "wmS", "errcode": 40096},  # not leaver's customer
    ]
    again = await wecom(
        client, token, "externalcontact/resigned/transfer_customer", {**body, "external_userid": ["wm0"]}
    )
    assert again["customer"] == [{"external_userid": "wm0", "errcode": 40100}]
    listed = await wecom(client, token, "externalcontact/get_unassigned_list", {})
    assert [i["external_userid"] for i in listed["info"]] == ["wm2", "wm3", "wm4"]  # under way: not listed

    transfers.refuse(state, "wm1")
    result_body = {"handover_userid": "leaver", "takeover_userid": "heir"}
    waiting = await wecom(client, token, "externalcontact/resigned/transfer_result", result_body)
    due = int((START + timedelta(hours=24)).timestamp())
    assert waiting["customer"] == [
        {"external_userid": "wm0", "status": 2, "takeover_time": due},
        {"external_userid": "wm1", "status": 3, "takeover_time": 0},
    ]
    clock.advance(timedelta(hours=24))
    token = await wecom_token(client, state)  # the old one expired (2 h)
    done = await wecom(client, token, "externalcontact/resigned/transfer_result", result_body)
    assert [c["status"] for c in done["customer"]] == [1, 3]
    assert state.contacts["wm0"].follow["heir"].active and not state.contacts["wm0"].follow["leaver"].active
    assert not state.contacts["wm1"].follow["leaver"].active  # refused a departed member's handover: gone


async def test_limits_and_groups(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    transfers.depart(state, "leaver")
    many = {"handover_userid": "leaver", "takeover_userid": "heir", "external_userid": [f"wm{i}" for i in range(101)]}
    assert (await wecom(client, token, "externalcontact/resigned/transfer_customer", many))["errcode"] == 40058
    long_msg = {"handover_userid": "stay", "takeover_userid": "heir", "external_userid": ["wmS"],
                "transfer_success_msg": "x" * 201}  # fmt: skip
    assert (await wecom(client, token, "externalcontact/transfer_customer", long_msg))["errcode"] == 40058
    groups = {"chat_id_list": ["wrL", "wrS", "wrNope"], "new_owner": "heir"}
    moved = await wecom(client, token, "externalcontact/groupchat/transfer", groups)
    assert [(f["chat_id"], f["errcode"]) for f in moved["failed_chat_list"]] == [("wrS", 90500), ("wrNope", 40050)]
    assert state.groups["wrL"].owner == "heir" and state.groups["wrS"].owner == "stay"
    onjob = await wecom(
        client, token, "externalcontact/groupchat/onjob_transfer", {"chat_id_list": ["wrS"], "new_owner": "heir"}
    )
    assert onjob["failed_chat_list"] == [] and state.groups["wrS"].owner == "heir"
    users = await (
        await client.get("/wecom/cgi-bin/externalcontact/get_follow_user_list", params={"access_token": token})
    ).json()
    assert "leaver" not in users["follow_user"]
    gone = await (
        await client.get("/wecom/cgi-bin/user/get", params={"access_token": token, "userid": "leaver"})
    ).json()
    assert gone["errcode"] == 60111
    heir = await (await client.get("/wecom/cgi-bin/user/get", params={"access_token": token, "userid": "heir"})).json()
    assert heir["department"] == [1]
