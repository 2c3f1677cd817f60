"""The simulated list APIs an import reads (docs/platform.md#customer-lists): cursors, limits, errcodes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.clock import FrozenClock
from bot.simulator import SimState, make_sim_app


async def wecom_token(client: TestClient[Any, Any], state: SimState) -> str:
    acc = state.accounts
    resp = await client.get("/wecom/cgi-bin/gettoken", params={"corpid": acc.corp_id, "corpsecret": acc.corp_secret})
    return str((await resp.json())["access_token"])


async def mp_token(client: TestClient[Any, Any], state: SimState) -> str:
    q = {"grant_type": "client_credential", "appid": state.accounts.app_id, "secret": state.accounts.app_secret}
    return str((await (await client.get("/mp/cgi-bin/token", params=q)).json())["access_token"])


async def wecom(client: TestClient[Any, Any], token: str, api: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(f"/wecom/cgi-bin/{api}", params={"access_token": token}, json=body)
    data: dict[str, Any] = await resp.json()
    return data


@pytest.fixture
def state() -> SimState:
    return SimState(clock=FrozenClock(datetime(2024, 6, 1, 2, 0, tzinfo=UTC)), seed=7)


@pytest.fixture
async def client(aiohttp_client: Any, state: SimState) -> TestClient[Any, Any]:
    c: TestClient[Any, Any] = await aiohttp_client(make_sim_app(state))
    return c


async def test_follow_users_and_their_customers_page_by_cursor(client: TestClient[Any, Any], state: SimState) -> None:
    tag = state.add_corp_tag("来源", "老客")
    for i in range(7):
        c = state.add_contact("alice", f"wm{i}", state="pkgcard" if i % 2 else None, unionid=f"u{i}")
        c.follow["alice"].tag_ids = [tag.id]
        c.follow["alice"].remark = f"r{i}"
    state.add_contact("bob", "wm0")  # one customer, two members: two rows
    state.contacts["wm6"].follow["alice"].active = False  # deleted: not listed
    token = await wecom_token(client, state)
    users = await (
        await client.get("/wecom/cgi-bin/externalcontact/get_follow_user_list", params={"access_token": token})
    ).json()
    assert users["errcode"] == 0 and sorted(users["follow_user"]) == ["alice", "bob"]

    rows, cursor, pages = [], "", 0
    while True:
        body = {"userid_list": ["alice", "bob"], "cursor": cursor, "limit": 3}
        data = await wecom(client, token, "externalcontact/batch/get_by_user", body)
        assert data["errcode"] == 0 and len(data["external_contact_list"]) <= 3
        rows += data["external_contact_list"]
        pages += 1
        cursor = data["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and len(rows) == 7  # wm0..wm5 with alice, wm0 with bob
    first = next(r for r in rows if r["external_contact"]["external_userid"] == "wm1")
    assert first["external_contact"]["unionid"] == "u1"
    info = first["follow_info"]
    assert (info["userid"], info["state"], info["tag_id"], info["remark"]) == ("alice", "pkgcard", [tag.id], "r1")
    assert {"createtime", "add_way", "oper_userid", "description"} <= set(info)
    assert "state" not in next(r for r in rows if r["external_contact"]["external_userid"] == "wm2")["follow_info"]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"userid_list": [], "limit": 10}, 40058),
        ({"userid_list": [f"u{i}" for i in range(101)]}, 40058),
        ({"userid_list": ["nobody"]}, 40003),
        ({"userid_list": ["alice"], "limit": 101}, 40058),
        ({"userid_list": ["alice"], "limit": 0}, 40058),
        ({"userid_list": ["alice"], "cursor": "not-a-cursor"}, 40058),
    ],
)
async def test_batch_get_by_user_refuses_bad_requests(
    client: TestClient[Any, Any], state: SimState, body: dict[str, Any], errcode: int
) -> None:
    state.add_contact("alice", "wm1")
    token = await wecom_token(client, state)
    assert (await wecom(client, token, "externalcontact/batch/get_by_user", body))["errcode"] == errcode


async def test_groupchat_list_pages_with_limits_and_owner_filter(client: TestClient[Any, Any], state: SimState) -> None:
    for i in range(5):
        state.add_group("alice" if i < 3 else "bob", f"g{i}", chat_id=f"wr{i}")
    state.groups["wr4"].dismissed = True
    token = await wecom_token(client, state)
    api = "externalcontact/groupchat/list"
    assert (await wecom(client, token, api, {}))["errcode"] == 40058  # limit is required
    assert (await wecom(client, token, api, {"limit": 1001}))["errcode"] == 40058
    assert (await wecom(client, token, api, {"limit": 10, "cursor": "bogus"}))["errcode"] == 40058
    first = await wecom(client, token, api, {"limit": 2})
    assert [g["chat_id"] for g in first["group_chat_list"]] == ["wr0", "wr1"] and first["next_cursor"]
    assert all(g["status"] == 0 for g in first["group_chat_list"])
    rest = await wecom(client, token, api, {"limit": 2, "cursor": first["next_cursor"]})
    assert [g["chat_id"] for g in rest["group_chat_list"]] == ["wr2", "wr3"] and rest["next_cursor"] == ""
    again = await wecom(client, token, api, {"limit": 2, "cursor": first["next_cursor"]})  # a cursor may be re-read
    assert again["group_chat_list"] == rest["group_chat_list"]
    bob = await wecom(client, token, api, {"limit": 1000, "owner_filter": {"userid_list": ["bob"]}})
    assert [g["chat_id"] for g in bob["group_chat_list"]] == ["wr3"]
    handed_over = await wecom(client, token, api, {"limit": 1000, "status_filter": 1})
    assert handed_over["group_chat_list"] == []
    detail = await wecom(client, token, "externalcontact/groupchat/get", {"chat_id": "wr0"})
    assert detail["group_chat"]["owner"] == "alice"


async def test_corp_tag_list_is_the_whole_library(client: TestClient[Any, Any], state: SimState) -> None:
    a, b = state.add_corp_tag("来源", "老客"), state.add_corp_tag("兴趣", "茶")
    token = await wecom_token(client, state)
    data = await wecom(client, token, "externalcontact/get_corp_tag_list", {})
    assert {t["id"] for g in data["tag_group"] for t in g["tag"]} == {a.id, b.id}


async def test_oa_user_get_pages_by_next_openid(
    client: TestClient[Any, Any], state: SimState, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.simulator import mp_api

    monkeypatch.setattr(mp_api, "USER_GET_PAGE", 3)
    for i in range(5):
        state.add_follower(f"o{i}")
    state.followers["o4"].subscribed = False
    token = await mp_token(client, state)

    async def get(next_openid: str = "") -> dict[str, Any]:
        q = {"access_token": token, **({"next_openid": next_openid} if next_openid else {})}
        data: dict[str, Any] = await (await client.get("/mp/cgi-bin/user/get", params=q)).json()
        return data

    one = await get()
    assert (one["total"], one["count"], one["data"]["openid"], one["next_openid"]) == (4, 3, ["o0", "o1", "o2"], "o2")
    two = await get(one["next_openid"])
    assert (two["count"], two["data"]["openid"], two["next_openid"]) == (1, ["o3"], "o3")
    assert await get(two["next_openid"]) == {"total": 4, "count": 0, "next_openid": ""}
    assert (await get("o-nobody"))["errcode"] == 40003
    assert mp_api.USER_GET_PAGE == 3 and mp_api.BATCHGET_MAX == 100


async def test_oa_user_info_batchget_and_tags(client: TestClient[Any, Any], state: SimState) -> None:
    f = state.add_follower("o1", unionid="un1")
    f.subscribe_scene, f.qr_scene_str = "ADD_SCENE_QR_CODE", "mp_follow"
    state.add_follower("o2")
    token = await mp_token(client, state)

    async def batchget(body: dict[str, Any]) -> dict[str, Any]:
        resp = await client.post("/mp/cgi-bin/user/info/batchget", params={"access_token": token}, json=body)
        data: dict[str, Any] = await resp.json()
        return data

    data = await batchget({"user_list": [{"openid": "o1", "lang": "zh_CN"}, {"openid": "o2"}]})
    assert set(data) == {"user_info_list"}  # the bare payload on success
    one = data["user_info_list"][0]
    assert (one["unionid"], one["subscribe_scene"], one["qr_scene_str"]) == ("un1", "ADD_SCENE_QR_CODE", "mp_follow")
    assert (await batchget({"user_list": []}))["errcode"] == 40032
    assert (await batchget({"user_list": [{"openid": "o1"}] * 101}))["errcode"] == 40032
    assert (await batchget({"user_list": [{"openid": "nobody"}]}))["errcode"] == 40003
    tags = await (await client.get("/mp/cgi-bin/tags/get", params={"access_token": token})).json()
    assert tags == {"tags": []}
