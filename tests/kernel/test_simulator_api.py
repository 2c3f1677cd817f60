"""The simulated WeCom / OA APIs: tokens, welcome codes, tags, channel codes, group sends, kf, OA."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from bot.clock import FrozenClock
from bot.config import build_settings
from bot.simulator import SimAccounts, SimState, make_sim_app, start_simulator
from bot.simulator.models import ServiceWindow, WelcomeCode
from bot.simulator.wecom_messages import confirm_msg_template

START = datetime(2024, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def state(clock: FrozenClock) -> SimState:
    return SimState(clock=clock, seed=7)


@pytest.fixture
async def client(aiohttp_client: Any, state: SimState) -> TestClient[Any, Any]:
    c: TestClient[Any, Any] = await aiohttp_client(make_sim_app(state))
    return c


async def wecom_token(client: TestClient[Any, Any], state: SimState) -> str:
    acc = state.accounts
    resp = await client.get("/wecom/cgi-bin/gettoken", params={"corpid": acc.corp_id, "corpsecret": acc.corp_secret})
    data = await resp.json()
    assert data["errcode"] == 0 and data["expires_in"] == 7200
    return str(data["access_token"])


async def wecom(client: TestClient[Any, Any], token: str, api: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(f"/wecom/cgi-bin/{api}", params={"access_token": token}, json=body)
    assert resp.status == 200
    data: dict[str, Any] = await resp.json()
    return data


async def mp_token(client: TestClient[Any, Any], state: SimState) -> str:
    acc = state.accounts
    q = {"grant_type": "client_credential", "appid": acc.app_id, "secret": acc.app_secret}
    data = await (await client.get("/mp/cgi-bin/token", params=q)).json()
    assert set(data) == {"access_token", "expires_in"}
    return str(data["access_token"])


async def mp(client: TestClient[Any, Any], token: str, api: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(f"/mp/cgi-bin/{api}", params={"access_token": token}, json=body)
    data: dict[str, Any] = await resp.json()
    return data


# --- tokens (docs/platform.md#access-tokens-and-rate-limits) ----------------------------------


async def test_gettoken_checks_credentials(client: TestClient[Any, Any], state: SimState) -> None:
    bad_corp = await client.get("/wecom/cgi-bin/gettoken", params={"corpid": "nope", "corpsecret": "x"})
    assert (await bad_corp.json())["errcode"] == 40013
    q = {"corpid": state.accounts.corp_id, "corpsecret": "wrong"}
    assert (await (await client.get("/wecom/cgi-bin/gettoken", params=q)).json())["errcode"] == 40001


async def test_wecom_token_expires_on_the_frozen_clock(
    client: TestClient[Any, Any], state: SimState, clock: FrozenClock
) -> None:
    token = await wecom_token(client, state)
    assert await wecom_token(client, state) == token  # same token while valid (docs/platform.md#wecom-tokens)
    assert (await wecom(client, token, "externalcontact/get_corp_tag_list", {}))["errcode"] == 0
    clock.advance(7199)
    assert (await wecom(client, token, "externalcontact/get_corp_tag_list", {}))["errcode"] == 0
    clock.advance(1)
    expired = await wecom(client, token, "externalcontact/get_corp_tag_list", {})
    assert expired["errcode"] == 42001
    assert expired["errmsg"].endswith("devtool/query?e=42001")
    assert (await wecom(client, "forged", "externalcontact/get_corp_tag_list", {}))["errcode"] == 40014
    assert (await wecom(client, "", "externalcontact/get_corp_tag_list", {}))["errcode"] == 41001
    assert await wecom_token(client, state) != token


async def test_oa_token_refresh_keeps_old_token_five_minutes(
    client: TestClient[Any, Any], state: SimState, clock: FrozenClock
) -> None:
    old = await mp_token(client, state)
    new = await mp_token(client, state)
    assert new != old
    assert "errcode" not in await mp(client, old, "tags/create", {"tag": {"name": "a"}})
    clock.advance(300)
    assert (await mp(client, old, "tags/create", {"tag": {"name": "b"}}))["errcode"] == 40001
    assert "tag" in await mp(client, new, "tags/create", {"tag": {"name": "b"}})


async def test_stable_token_normal_and_force_refresh(
    client: TestClient[Any, Any], state: SimState, clock: FrozenClock
) -> None:
    acc = state.accounts
    body = {"grant_type": "client_credential", "appid": acc.app_id, "secret": acc.app_secret}

    async def stable(force: bool) -> dict[str, Any]:
        data: dict[str, Any] = await (
            await client.post("/mp/cgi-bin/stable_token", json={**body, "force_refresh": force})
        ).json()
        return data

    first = await stable(False)
    assert (await stable(False))["access_token"] == first["access_token"]
    clock.advance(40)
    forced = await stable(True)
    assert forced["access_token"] != first["access_token"]
    assert (await mp(client, first["access_token"], "tags/create", {"tag": {"name": "t"}}))["errcode"] == 40001
    assert (await stable(True))["errcode"] == 45011  # force refreshes need 30 s between them
    bad = await client.post("/mp/cgi-bin/stable_token", json={**body, "secret": "x"})
    assert (await bad.json())["errcode"] == 40125


# --- welcome code (docs/platform.md#welcome-messages) -------------------------------------------


def issue_code(state: SimState, code: str = "WELCOME1") -> str:
    contact = state.add_contact("zhangsan")
    state.welcome_codes[code] = WelcomeCode(code, "zhangsan", contact.external_userid, state.now())
    return code


async def test_welcome_code_single_use(client: TestClient[Any, Any], state: SimState, clock: FrozenClock) -> None:
    token = await wecom_token(client, state)
    code = issue_code(state)
    clock.advance(19)
    body = {"welcome_code": code, "text": {"content": "hi"}}
    assert (await wecom(client, token, "externalcontact/send_welcome_msg", body))["errcode"] == 0
    assert (await wecom(client, token, "externalcontact/send_welcome_msg", body))["errcode"] == 41051
    contact = state.contacts[state.welcome_codes[code].external_userid]
    assert contact.welcomes == [body]


async def test_welcome_code_expires_after_20_seconds(
    client: TestClient[Any, Any], state: SimState, clock: FrozenClock
) -> None:
    token = await wecom_token(client, state)
    code = issue_code(state)
    clock.advance(20)
    body = {"welcome_code": code, "text": {"content": "hi"}}
    assert (await wecom(client, token, "externalcontact/send_welcome_msg", body))["errcode"] == 41050
    missing = await wecom(client, token, "externalcontact/send_welcome_msg", {"text": {"content": "x"}})
    assert missing["errcode"] == 41049


@pytest.mark.parametrize(
    ("attachments", "errcode"),
    [
        ([{"msgtype": "image", "image": {"media_id": "M"}}] * 10, 40058),
        ([{"msgtype": "voice", "voice": {"media_id": "M"}}], 41065),
        ([{"msgtype": "link", "link": {"title": "t"}}], 40058),
        ([{"msgtype": "miniprogram", "miniprogram": {"title": "t", "appid": "a", "page": "p"}}], 40058),
    ],
)
async def test_welcome_attachments_are_validated_without_consuming_the_code(
    client: TestClient[Any, Any], state: SimState, attachments: list[dict[str, Any]], errcode: int
) -> None:
    token = await wecom_token(client, state)
    code = issue_code(state)
    bad = await wecom(
        client, token, "externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": attachments}
    )
    assert bad["errcode"] == errcode
    nine = [{"msgtype": "image", "image": {"pic_url": "https://x/y.png"}}] * 9
    ok = await wecom(client, token, "externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": nine})
    assert ok["errcode"] == 0


# --- recording (the simulator's own contract) -------------------------------------------------


async def test_calls_are_recorded_without_access_token(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    await wecom(client, token, "externalcontact/send_welcome_msg", {"welcome_code": "nope", "text": {"content": "x"}})
    [call] = state.calls_to("externalcontact/send_welcome_msg")
    assert state.calls_to("/cgi-bin/externalcontact/send_welcome_msg") == [call]
    assert call.platform == "wecom" and call.method == "POST" and "access_token" not in call.query
    assert call.path == "/wecom/cgi-bin/externalcontact/send_welcome_msg"
    assert call.body == {"welcome_code": "nope", "text": {"content": "x"}}
    assert call.errcode == 41050 and call.at == START
    assert state.last_call("gettoken").query["corpid"] == state.accounts.corp_id


async def test_injected_errors_and_unknown_paths(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    state.inject_error("externalcontact/get_corp_tag_list", -1, "system busy")
    assert (await wecom(client, token, "externalcontact/get_corp_tag_list", {}))["errcode"] == -1
    assert (await wecom(client, token, "externalcontact/get_corp_tag_list", {}))["errcode"] == 0
    unknown = await client.post("/wecom/cgi-bin/no/such/api", params={"access_token": token}, json={})
    assert unknown.status == 404
    mp_unknown = await client.post("/mp/cgi-bin/no/such/api", json={})
    assert (await mp_unknown.json())["errcode"] == 40066
    wrong_method = await client.get("/wecom/cgi-bin/externalcontact/mark_tag", params={"access_token": token})
    assert (await wrong_method.json())["errcode"] == 43002


# --- tags, customer detail (docs/platform.md#corp-tags, #group-detail) --------------------------


async def test_corp_tags_and_mark_tag(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    contact = state.add_contact("zhangsan", state="ch_douyin", unionid="u1")
    added = await wecom(
        client, token, "externalcontact/add_corp_tag", {"group_name": "渠道", "tag": [{"name": "抖音"}]}
    )
    tag_id = added["tag_group"]["tag"][0]["id"]
    dup = await wecom(client, token, "externalcontact/add_corp_tag", {"group_name": "渠道", "tag": [{"name": "抖音"}]})
    assert dup["errcode"] == 40071
    body = {"userid": "zhangsan", "external_userid": contact.external_userid, "add_tag": [tag_id]}
    assert (await wecom(client, token, "externalcontact/mark_tag", body))["errcode"] == 0
    assert (await wecom(client, token, "externalcontact/mark_tag", {**body, "add_tag": ["x"]}))["errcode"] == 40068
    assert (await wecom(client, token, "externalcontact/mark_tag", {**body, "userid": "lisi"}))["errcode"] == 40003
    detail = await client.get(
        "/wecom/cgi-bin/externalcontact/get",
        params={"access_token": token, "external_userid": contact.external_userid},
    )
    data = await detail.json()
    assert data["external_contact"]["unionid"] == "u1"
    [follow] = data["follow_user"]
    assert follow["state"] == "ch_douyin"
    assert follow["tags"] == [{"group_name": "渠道", "tag_name": "抖音", "tag_id": tag_id, "type": 1}]
    console = state.add_corp_tag("Console", "VIP")
    edit = await wecom(client, token, "externalcontact/edit_corp_tag", {"id": console.id, "name": "x"})
    assert edit["errcode"] == 81011


# --- channel codes and groups (docs/platform.md#channel-codes) ------------------------------------


async def test_contact_way_state_limit(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    state.add_staff("zhangsan")
    base = {"type": 1, "scene": 2, "user": ["zhangsan"]}
    too_long = await wecom(client, token, "externalcontact/add_contact_way", {**base, "state": "s" * 31})
    assert too_long["errcode"] == 40058
    assert (await wecom(client, token, "externalcontact/add_contact_way", {"scene": 2}))["errcode"] == 41037
    made = await wecom(client, token, "externalcontact/add_contact_way", {**base, "state": "s" * 30})
    image_url = URL(made["qr_code"])
    assert image_url.path.startswith("/wwpic/") and image_url.host == client.server.host
    image = await client.get(image_url.path)
    assert image.status == 200 and image.content_type == "image/png"
    assert (await image.read()).startswith(b"\x89PNG\r\n\x1a\n")
    got = await wecom(client, token, "externalcontact/get_contact_way", {"config_id": made["config_id"]})
    assert got["contact_way"]["state"] == "s" * 30
    upd = {"config_id": made["config_id"], "state": "ch_new"}
    assert (await wecom(client, token, "externalcontact/update_contact_way", upd))["errcode"] == 0
    assert state.contact_ways[made["config_id"]].fields["state"] == "ch_new"
    gone = {"config_id": made["config_id"]}
    assert (await wecom(client, token, "externalcontact/del_contact_way", gone))["errcode"] == 0
    assert (await wecom(client, token, "externalcontact/get_contact_way", gone))["errcode"] == 41044


async def test_join_way_and_groupchat_get(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    group = state.add_group("zhangsan", "VIP 1")
    made = await wecom(
        client,
        token,
        "externalcontact/groupchat/add_join_way",
        {"scene": 2, "chat_id_list": [group.chat_id], "state": "grp_poster", "remark": "r" * 40},
    )
    got = await wecom(client, token, "externalcontact/groupchat/get_join_way", {"config_id": made["config_id"]})
    assert got["join_way"]["state"] == "grp_poster" and len(got["join_way"]["remark"]) == 30
    six = {"scene": 2, "chat_id_list": [group.chat_id] * 6}
    assert (await wecom(client, token, "externalcontact/groupchat/add_join_way", six))["errcode"] == 40058
    detail = await wecom(client, token, "externalcontact/groupchat/get", {"chat_id": group.chat_id, "need_name": 1})
    chat = detail["group_chat"]
    assert chat["owner"] == "zhangsan" and len(chat["member_version"]) == 32
    assert chat["member_list"][0]["name"] == "zhangsan"
    assert (await wecom(client, token, "externalcontact/groupchat/get", {"chat_id": "wrX"}))["errcode"] == 40050


# --- group-send tasks (docs/platform.md#group-send-tasks) ------------------------------------------


async def test_group_send_task_and_monthly_cap(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    a = state.add_contact("zhangsan").external_userid
    b = state.add_contact("zhangsan").external_userid
    body = {
        "chat_type": "single",
        "sender": "zhangsan",
        "external_userid": [a, b, "wmStranger"],
        "text": {"content": "June sale"},
    }
    made = await wecom(client, token, "externalcontact/add_msg_template", body)
    assert made["fail_list"] == ["wmStranger"]
    month, cap = state.month_cap()
    assert (month, cap) == ("2024-06", 30)
    state.mass_received[(b, month)] = cap
    confirm_msg_template(state, made["msgid"])  # the member taps "send" in the client
    result = await wecom(
        client, token, "externalcontact/get_groupmsg_send_result", {"msgid": made["msgid"], "userid": "zhangsan"}
    )
    assert {(r["external_userid"], r["status"]) for r in result["send_list"]} == {(a, 1), (b, 3)}
    task = await wecom(client, token, "externalcontact/get_groupmsg_task", {"msgid": made["msgid"]})
    assert task["task_list"][0]["status"] == 2
    remind = {"msgid": made["msgid"]}
    codes = [(await wecom(client, token, "externalcontact/remind_groupmsg_send", remind))["errcode"] for _ in range(4)]
    assert codes == [0, 0, 0, 45009]


# --- kf (docs/platform.md#wecom-kf) ----------------------------------------------------------------


async def test_kf_send_window(client: TestClient[Any, Any], state: SimState, clock: FrozenClock) -> None:
    token = await wecom_token(client, state)
    body = {"touser": "wmC", "open_kfid": "wkK", "msgtype": "text", "text": {"content": "hi"}}
    assert (await wecom(client, token, "kf/send_msg", body))["errcode"] == 95018
    state.kf_windows[("wkK", "wmC")] = ServiceWindow(state.now(), 48 * 3600, 5)
    codes = [(await wecom(client, token, "kf/send_msg", body))["errcode"] for _ in range(6)]
    assert codes == [0, 0, 0, 0, 0, 95018]
    state.kf_windows[("wkK", "wmC")] = ServiceWindow(state.now(), 48 * 3600, 5)
    clock.advance(48 * 3600)
    token = await wecom_token(client, state)  # the old one expired meanwhile
    assert (await wecom(client, token, "kf/send_msg", body))["errcode"] == 95018


# --- Official Account (docs/platform.md#official-account) ------------------------------------------


async def test_custom_send_windows(client: TestClient[Any, Any], state: SimState, clock: FrozenClock) -> None:
    token = await mp_token(client, state)
    fan = state.add_follower()
    body = {"touser": fan.openid, "msgtype": "text", "text": {"content": "hi"}}
    assert (await mp(client, token, "message/custom/send", body))["errcode"] == 45015
    fan.event_window = ServiceWindow(state.now(), 60, 3)
    codes = [(await mp(client, token, "message/custom/send", body))["errcode"] for _ in range(4)]
    assert codes == [0, 0, 0, 45047]
    clock.advance(60)
    assert (await mp(client, token, "message/custom/send", body))["errcode"] == 45015
    fan.message_window = ServiceWindow(state.now(), 48 * 3600, 5)
    codes = [(await mp(client, token, "message/custom/send", body))["errcode"] for _ in range(6)]
    assert codes == [0, 0, 0, 0, 0, 45047]
    fan.subscribed = False
    assert (await mp(client, token, "message/custom/send", body))["errcode"] == 45015


async def test_oa_tags_qrcode_user_info_template(client: TestClient[Any, Any], state: SimState) -> None:
    token = await mp_token(client, state)
    fan = state.add_follower(unionid="u9")
    tag = (await mp(client, token, "tags/create", {"tag": {"name": "抽奖"}}))["tag"]
    assert tag["id"] >= 100
    tagging = {"openid_list": [fan.openid], "tagid": tag["id"]}
    assert (await mp(client, token, "tags/members/batchtagging", tagging))["errcode"] == 0
    tags = await (await client.get("/mp/cgi-bin/tags/get", params={"access_token": token})).json()
    assert tags["tags"] == [{"id": tag["id"], "name": "抽奖", "count": 1}]
    qr = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}}
    assert (await mp(client, token, "qrcode/create", qr))["errcode"] == 40097
    qr["action_info"] = {"scene": {"scene_str": "ch_poster_01"}}
    made = await mp(client, token, "qrcode/create", qr)
    assert set(made) == {"ticket", "url"} and state.qrcodes[made["ticket"]].scene == "ch_poster_01"
    info = await (
        await client.get("/mp/cgi-bin/user/info", params={"access_token": token, "openid": fan.openid})
    ).json()
    assert info["subscribe"] == 1 and info["unionid"] == "u9" and info["tagid_list"] == [tag["id"]]
    tpl = {"touser": fan.openid, "template_id": "TPL_sim_notice", "client_msg_id": "c1", "data": {}}
    first = await mp(client, token, "message/template/send", tpl)
    assert first["errcode"] == 0 and (await mp(client, token, "message/template/send", tpl))["msgid"] == first["msgid"]
    assert len([d for d in state.delivered if d.api == "message/template/send"]) == 1


# --- running it (demo / developers) ------------------------------------------------------------


async def test_start_simulator_with_the_bots_credentials() -> None:
    settings = build_settings(
        {
            "wecom": {"corp_id": "wwdemo", "secret": "s3cret", "token": "tok", "encoding_aes_key": "k" * 43},
            "official_account": {"app_id": "wxdemo", "app_secret": "as", "token": "t2", "encoding_aes_key": "m" * 43},
        },
        env={},
    )
    state = SimState(accounts=SimAccounts.from_settings(settings))
    sim = await start_simulator(state, "127.0.0.1", 0)
    try:
        assert sim.port > 0 and sim.wecom_api_base.endswith("/wecom")
        async with aiohttp.ClientSession() as session:
            q = {"corpid": "wwdemo", "corpsecret": "s3cret"}
            async with session.get(f"{sim.wecom_api_base}/cgi-bin/gettoken", params=q) as resp:
                assert (await resp.json())["errcode"] == 0
    finally:
        await sim.close()
    assert state.last_call("gettoken").status == 200


# --- temporary media (media/upload) and the media ids messages may use ----------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def upload(
    client: TestClient[Any, Any], token: str, kind: str, data: bytes | None, name: str = "a.png"
) -> dict[str, Any]:
    form = aiohttp.FormData()
    field = "media" if data is not None else "file"  # None: a file under another field name
    form.add_field(field, io.BytesIO(data or PNG), filename=name, content_type="application/octet-stream")
    resp = await client.post("/wecom/cgi-bin/media/upload", params={"access_token": token, "type": kind}, data=form)
    assert resp.status == 200
    answer: dict[str, Any] = await resp.json()
    return answer


async def test_media_upload_checks_type_size_and_format(client: TestClient[Any, Any], state: SimState) -> None:
    token = await wecom_token(client, state)
    assert (await upload(client, token, "thumb", PNG))["errcode"] == 40004
    assert (await upload(client, token, "image", None))["errcode"] == 44001
    assert (await upload(client, token, "file", b"12345"))["errcode"] == 40006  # must be > 5 bytes
    assert (await upload(client, token, "image", b"GIF89a" + b"\x00" * 10))["errcode"] == 40005
    assert (await upload(client, token, "image", PNG + b"\x00" * (10 << 20)))["errcode"] == 40009
    assert (await upload(client, token, "video", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (10 << 20)))[
        "errcode"
    ] == 40011
    assert state.media == {}
    ok = await upload(client, token, "image", PNG, "cover.png")
    assert ok["errcode"] == 0 and ok["errmsg"] == "ok" and ok["type"] == "image"
    assert ok["created_at"] == str(int(START.timestamp())) and isinstance(ok["media_id"], str)
    assert state.media[ok["media_id"]].filename == "cover.png"
    call = state.last_call("media/upload")
    assert call.body == {
        "media": {"filename": "cover.png", "filelength": len(PNG), "content_type": "application/octet-stream"}
    }


async def test_welcome_takes_only_issued_unexpired_media_of_the_right_type(
    client: TestClient[Any, Any], state: SimState, clock: FrozenClock
) -> None:
    tokens = [await wecom_token(client, state)]
    image = (await upload(client, tokens[0], "image", PNG))["media_id"]
    video = (await upload(client, tokens[0], "video", b"\x00\x00\x00\x18ftypmp42xxxx", "a.mp4"))["media_id"]

    async def welcome(*attachments: dict[str, Any]) -> int:
        code = issue_code(state)
        body = {"welcome_code": code, "text": {"content": "hi"}, "attachments": list(attachments)}
        errcode: int = (await wecom(client, tokens[-1], "externalcontact/send_welcome_msg", body))["errcode"]
        assert state.welcome_codes[code].used == (errcode == 0)  # a refused body leaves the code usable
        return errcode

    mini = {"title": "t", "appid": "wx8d4c2b1a9e7f6035", "page": "p"}
    assert await welcome({"msgtype": "image", "image": {"media_id": image}}) == 0
    assert await welcome({"msgtype": "miniprogram", "miniprogram": {**mini, "pic_media_id": image}}) == 0
    assert await welcome({"msgtype": "video", "video": {"media_id": video}}) == 0
    assert await welcome({"msgtype": "image", "image": {"media_id": "MEDIA_GIFT"}}) == 40007
    assert await welcome({"msgtype": "image", "image": {"media_id": video}}) == 40007
    assert await welcome({"msgtype": "file", "file": {"media_id": image}}) == 40007
    clock.advance(3 * 86400 - 1)
    tokens.append(await wecom_token(client, state))  # the first one expired long ago
    assert await welcome({"msgtype": "image", "image": {"media_id": image}}) == 0
    clock.advance(1)
    assert await welcome({"msgtype": "image", "image": {"media_id": image}}) == 40007
    assert await welcome({"msgtype": "image", "image": {"pic_url": "https://x/y.png"}}) == 0
