"""``content sync`` and ``channels qr`` against the simulator, on a migrated database (SQLite, and
PostgreSQL when SIYU_TEST_DATABASE_URL is set). Assertions are on what the platform received."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from bot.config import Settings
from bot.simulator import SimState, wecom_channels
from bot.simulator.models import OaTag
from bot.simulator.wecom_channels import qr_image
from handlers.growth.sync import qr_command, sync_command, write_qr_png
from handlers.growth.tables import SyncedObject
from tests.growth.helpers import CHAT_IDS, STAFF, ServerFactory, seed, serve_sim, synced_rows, write_content
from tests.support.settings import SHIPPED_CONTENT, make_settings

WRITE_APIS = {
    "externalcontact/add_corp_tag",
    "externalcontact/edit_corp_tag",
    "externalcontact/del_corp_tag",
    "externalcontact/add_contact_way",
    "externalcontact/update_contact_way",
    "externalcontact/del_contact_way",
    "externalcontact/groupchat/add_join_way",
    "externalcontact/groupchat/update_join_way",
    "tags/create",
    "tags/update",
    "tags/delete",
    "qrcode/create",
    "externalcontact/group_welcome_template/add",
    "externalcontact/group_welcome_template/edit",
    "externalcontact/group_welcome_template/del",
}


class World:
    """The simulator, the bot's settings pointing at it, and helpers to run the commands."""

    def __init__(self, state: SimState, settings: Settings, content_dir: Path) -> None:
        self.state, self.settings, self.content_dir = state, settings, content_dir
        self.output = ""

    async def sync(self, dry_run: bool = False) -> int:
        out = io.StringIO()
        code = await sync_command(self.settings, dry_run, out)
        self.output = out.getvalue()
        return code

    def calls_since(self, mark: int) -> list[str]:
        return [c.api for c in self.state.calls[mark:]]

    def writes_since(self, mark: int) -> list[str]:
        return [api for api in self.calls_since(mark) if api in WRITE_APIS]

    def edit_channels(self, old: str, new: str) -> None:
        path = self.content_dir / "channels.toml"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def make_world(aiohttp_server: ServerFactory, db_url: str, content_dir: Path) -> World:
    state, settings = await serve_sim(aiohttp_server, db_url, content_dir)
    return World(state, settings, content_dir)


@pytest.fixture
async def world(aiohttp_server: ServerFactory, db_url: str, tmp_path: Path) -> World:
    w = await make_world(aiohttp_server, db_url, write_content(tmp_path / "content"))
    seed(w.state, (*STAFF, "mia"), CHAT_IDS)
    return w


def way_by_state(ways: dict[str, Any], state: str) -> Any:
    found = [w for w in ways.values() if w.fields.get("state") == state]
    assert len(found) == 1, f"{len(found)} codes with state {state!r}"
    return found[0]


async def test_first_sync_creates_every_object_with_its_fields(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0, world.output
    s = world.state
    pkg, store = way_by_state(s.contact_ways, "pkgcard"), way_by_state(s.contact_ways, "store")
    assert (pkg.fields["type"], pkg.fields["scene"], pkg.fields["user"]) == (2, 2, ["lulu", "axin"])
    assert (pkg.fields["remark"], pkg.fields["skip_verify"]) == ("包裹卡", True)
    assert (store.fields["type"], store.fields["user"], store.fields["skip_verify"]) == (1, ["lulu"], False)
    (join,) = s.join_ways.values()
    assert join.fields["chat_id_list"] == list(CHAT_IDS) and join.fields["state"] == "fans"
    assert (join.fields["scene"], join.fields["room_base_name"], join.fields["room_base_id"]) == (2, "福利群", 3)
    (qr,) = s.qrcodes.values()
    assert (qr.action_name, qr.scene_str, qr.expire_at) == ("QR_LIMIT_STR_SCENE", "poster_618", None)
    groups = {g.group_name: sorted(s.tags[t].name for t in g.tag_ids) for g in s.tag_groups.values()}
    assert groups == {"渠道": ["包裹卡", "海报", "粉丝群"], "层级": ["核心"]}
    assert sorted(t.name for t in s.oa_tags.values()) == ["包裹卡", "海报", "粉丝群"]
    assert len(s.calls_to("externalcontact/add_corp_tag")) == 2  # one call per group

    recorded = await synced_rows(engine)
    assert recorded[("contact_way", "pkgcard")].remote_id == pkg.config_id
    assert recorded[("contact_way", "pkgcard")].data["qr_code"] == pkg.qr_code
    assert recorded[("join_way", "fans")].remote_id == join.config_id
    assert recorded[("join_way", "fans")].data["qr_code"] == join.qr_code
    assert recorded[("mp_qrcode", "poster")].remote_id == qr.ticket
    assert recorded[("mp_qrcode", "poster")].data["url"].startswith("http://weixin.qq.com/q/")
    tag_row = recorded[("corp_tag", "渠道/包裹卡")]
    assert s.tags[tag_row.remote_id].name == "包裹卡" and tag_row.data["created"] is True
    assert s.oa_tags[int(recorded[("mp_tag", "渠道/海报")].remote_id)].name == "海报"
    assert "create     contact_way     pkgcard" in world.output and "failed: 0" in world.output


async def test_second_sync_makes_no_call_at_all(world: World) -> None:
    assert await world.sync() == 0
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.calls_since(mark) == []
    assert "plan: 14 unchanged" in world.output and "nothing to do" in world.output


async def test_a_staff_change_is_exactly_one_update_call(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    before = await synced_rows(engine)
    world.edit_channels('staff = ["lulu", "axin"]', 'staff = ["lulu", "axin", "mia"]')
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.calls_since(mark) == ["externalcontact/update_contact_way"]
    call = world.state.last_call("externalcontact/update_contact_way")
    assert call.body is not None and call.body["config_id"] == before[("contact_way", "pkgcard")].remote_id
    assert call.body["user"] == ["lulu", "axin", "mia"] and call.body["state"] == "pkgcard"
    after = await synced_rows(engine)
    assert after[("contact_way", "pkgcard")].fingerprint != before[("contact_way", "pkgcard")].fingerprint
    assert after[("contact_way", "pkgcard")].data["qr_code"] == before[("contact_way", "pkgcard")].data["qr_code"]
    assert "update     contact_way     pkgcard  (user)" in world.output
    mark = len(world.state.calls)
    assert await world.sync() == 0 and world.calls_since(mark) == []


async def test_a_join_way_change_is_one_update_and_a_new_scene_one_new_code(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    old_ticket = (await synced_rows(engine))[("mp_qrcode", "poster")].remote_id
    world.edit_channels("room_base_id = 3", "room_base_id = 7")
    world.edit_channels('scene_str = "poster_618"', 'scene_str = "poster_1111"')
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert sorted(world.writes_since(mark)) == ["externalcontact/groupchat/update_join_way", "qrcode/create"]
    (join,) = world.state.join_ways.values()
    assert join.fields["room_base_id"] == 7 and join.fields["chat_id_list"] == list(CHAT_IDS)
    poster = (await synced_rows(engine))[("mp_qrcode", "poster")]
    assert poster.remote_id != old_ticket and poster.data["replaced"] == [old_ticket]
    assert world.state.qrcodes[poster.remote_id].scene_str == "poster_1111"


async def test_dry_run_prints_the_plan_and_calls_nothing(world: World, engine: AsyncEngine) -> None:
    assert await world.sync(dry_run=True) == 0
    assert world.state.calls == [] and await synced_rows(engine) == {}
    assert "create     join_way        fans" in world.output and "dry run: nothing was changed" in world.output


async def test_broken_content_changes_nothing(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    before, mark = await synced_rows(engine), len(world.state.calls)
    world.edit_channels('staff = ["lulu", "axin"]', 'staff = ["lulu", "axin"]\nbogus = 1')
    for dry_run in (False, True):
        assert await world.sync(dry_run) == 1
        assert "channels.toml" in world.output and "bogus" in world.output and "nothing was synced" in world.output
    assert world.calls_since(mark) == [] and await synced_rows(engine) == before


async def test_broken_content_on_a_fresh_database_calls_nothing(world: World, engine: AsyncEngine) -> None:
    (world.content_dir / "tags.toml").write_text("[[tag_groups]\n", encoding="utf-8")
    assert await world.sync() == 1
    assert world.state.calls == [] and await synced_rows(engine) == {}
    assert "tags.toml" in world.output and "not valid TOML" in world.output


async def test_a_failed_run_resumes_without_duplicates(world: World, engine: AsyncEngine) -> None:
    world.state.inject_error("externalcontact/add_contact_way", 40003, "invalid userid")
    world.state.inject_error("externalcontact/groupchat/get_join_way", 40058, "invalid param")
    assert await world.sync() == 1
    assert "error      contact_way     pkgcard: externalcontact/add_contact_way: errcode=40003" in world.output
    assert "error      join_way        fans" in world.output and "failed: 2" in world.output
    recorded = await synced_rows(engine)
    assert ("contact_way", "pkgcard") not in recorded and ("contact_way", "store") in recorded
    assert "qr_code" not in recorded[("join_way", "fans")].data  # config_id saved before the QR was fetched

    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.calls_since(mark) == ["externalcontact/add_contact_way", "externalcontact/groupchat/get_join_way"]
    assert "resume     join_way        fans  (qr_code)" in world.output
    assert len(world.state.contact_ways) == 2 and len(world.state.join_ways) == 1
    (join,) = world.state.join_ways.values()
    assert (await synced_rows(engine))[("join_way", "fans")].data["qr_code"] == join.qr_code


async def test_a_contact_way_without_its_qr_is_resumed_by_a_read(world: World, engine: AsyncEngine) -> None:
    assert await world.sync() == 0
    row = (await synced_rows(engine))[("contact_way", "store")]
    data = {k: v for k, v in row.data.items() if k != "qr_code"}
    table = SyncedObject.__table__
    async with engine.begin() as conn:
        await conn.execute(update(table).where(table.c.kind == "contact_way", table.c.key == "store").values(data=data))
    mark = len(world.state.calls)
    assert await world.sync() == 0, world.output
    assert world.calls_since(mark) == ["externalcontact/get_contact_way"]
    assert (await synced_rows(engine))[("contact_way", "store")].data["qr_code"] == row.data["qr_code"]


async def test_existing_tags_are_adopted_not_duplicated(world: World, engine: AsyncEngine) -> None:
    console_tag = world.state.add_corp_tag("渠道", "包裹卡")  # made in the admin console: not ours to edit
    world.state.oa_tags[100] = OaTag(100, "海报")
    assert await world.sync() == 0, world.output
    first = world.state.calls_to("externalcontact/add_corp_tag")[0].body
    assert first == {"group_id": console_tag.group_id, "tag": [{"name": "海报"}, {"name": "粉丝群"}]}
    assert [c.body for c in world.state.calls_to("tags/create")] == [
        {"tag": {"name": "包裹卡"}},
        {"tag": {"name": "粉丝群"}},
    ]
    recorded = await synced_rows(engine)
    assert recorded[("corp_tag", "渠道/包裹卡")].remote_id == console_tag.id
    assert recorded[("corp_tag", "渠道/包裹卡")].data["created"] is False
    assert recorded[("mp_tag", "渠道/海报")].remote_id == "100"
    assert "adopt      corp_tag        渠道/包裹卡" in world.output


async def test_rejected_credentials_stop_the_sync(aiohttp_server: ServerFactory, db_url: str, tmp_path: Path) -> None:
    w = await make_world(aiohttp_server, db_url, write_content(tmp_path / "content"))
    w.settings = make_settings(
        db_url,
        wecom={"api_base_url": w.settings.wecom.api_base_url, "secret": "wrong"},
        official_account={"api_base_url": w.settings.official_account.api_base_url},
        content_dir=str(w.content_dir),
    )
    assert await w.sync() == 1
    assert "sync stopped" in w.output and "wrong" not in w.output
    assert w.writes_since(0) == []


async def test_the_sample_content_syncs_and_then_stays_quiet(
    aiohttp_server: ServerFactory, db_url: str, tmp_path: Path
) -> None:
    content_dir = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, content_dir)
    w = await make_world(aiohttp_server, db_url, content_dir)
    chats = ("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", "wrOgQhDgAAMYQiS5ol9G7gK9JVBBBB")
    seed(w.state, ("lulu", "axin", "kefu_backup", "weekend_duty", "zhubo_xiaoyu", "sh01_wangjie"), chats)
    assert await w.sync() == 0, w.output
    assert len(w.state.contact_ways) == 5 and len(w.state.join_ways) == 1 and len(w.state.qrcodes) == 2
    (template,) = w.state.welcome_templates.values()  # group_fans' welcome_group_fans: text + one link
    assert template.content["text"]["content"].startswith("欢迎%NICKNAME%加入山野小食福利群！")
    assert template.content["link"] == {
        "title": "本周会员日秒杀清单",
        "url": "https://shop.example.com/activity/weekly",
    }
    mark = len(w.state.calls)
    assert await w.sync() == 0 and w.calls_since(mark) == []


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_qr_png_for_synced_channels(world: World, tmp_path: Path) -> None:
    assert await world.sync() == 0
    for code in ("pkgcard", "fans", "poster"):
        path, out = tmp_path / f"{code}.png", io.StringIO()
        assert await qr_command(world.settings, code, str(path), out=out) == 0, out.getvalue()
        width, height = png_size(path.read_bytes())
        assert width == height > 200
    assert "weixin.qq.com/q/" in out.getvalue()


async def test_qr_refuses_unsynced_and_outdated_channels(world: World, tmp_path: Path) -> None:
    out, path = io.StringIO(), tmp_path / "x.png"
    assert await qr_command(world.settings, "pkgcard", str(path), out=out) == 1
    assert "run `siyu-bot content sync` first" in out.getvalue() and not path.exists()
    assert await world.sync() == 0
    assert await qr_command(world.settings, "nope", str(path), out=out) == 1
    world.edit_channels('scene_str = "poster_618"', 'scene_str = "poster_1111"')
    out = io.StringIO()
    assert await qr_command(world.settings, "poster", str(path), out=out) == 1
    assert "needs a new code" in out.getvalue() and not path.exists()


# --- channels qr: WeCom codes are the platform's own image, OA codes are drawn locally ----------------


async def set_qr_code(engine: AsyncEngine, kind: str, key: str, url: str) -> None:
    data = {**(await synced_rows(engine))[(kind, key)].data, "qr_code": url}
    match = (SyncedObject.kind == kind, SyncedObject.key == key)
    async with engine.begin() as conn:
        await conn.execute(update(SyncedObject).where(*match).values(data=data))


async def test_wecom_qr_writes_the_image_the_platform_serves(world: World, engine: AsyncEngine, tmp_path: Path) -> None:
    assert await world.sync() == 0
    recorded = await synced_rows(engine)
    async with aiohttp.ClientSession() as http:
        for kind, code in (("contact_way", "pkgcard"), ("join_way", "fans")):
            url = recorded[(kind, code)].data["qr_code"]
            async with http.get(url) as resp:
                served = await resp.read()
            name = URL(url).name
            assert served == qr_image(world.state, name) and served.startswith(b"\x89PNG")
            path, out = tmp_path / f"{code}.png", io.StringIO()
            assert await qr_command(world.settings, code, str(path), out=out) == 0, out.getvalue()
            assert path.read_bytes() == served  # the platform's image, not a QR of its URL
            assert f"image from {url}" in out.getvalue()
    ca = wecom_channels.qr_payload(world.state, URL(recorded[("contact_way", "pkgcard")].data["qr_code"]).name)
    assert ca == f"https://work.weixin.qq.com/ca/{recorded[('contact_way', 'pkgcard')].remote_id}"


async def test_oa_qr_is_drawn_from_the_recorded_url(world: World, engine: AsyncEngine, tmp_path: Path) -> None:
    assert await world.sync() == 0
    url = (await synced_rows(engine))[("mp_qrcode", "poster")].data["url"]
    path, expected, out = tmp_path / "poster.png", tmp_path / "expected.png", io.StringIO()
    assert await qr_command(world.settings, "poster", str(path), out=out) == 0
    write_qr_png(url, str(expected))
    assert path.read_bytes() == expected.read_bytes()
    assert f"wrote {path} (mp_qrcode poster: {url})" in out.getvalue()
    assert not any(c.api.startswith("wwpic") for c in world.state.calls)


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200


def image_host() -> web.Application:
    """A stand-in image host answering what a broken or unusual one might."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html>not an image</html>", content_type="text/html")

    async def jpeg(_: web.Request) -> web.Response:
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * (3 << 20), content_type="image/png")

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(40):
            await resp.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * (64 << 10))
        return resp

    app = web.Application()
    app.router.add_get("/page.html", page)
    app.router.add_get("/code.jpg", jpeg)
    app.router.add_get("/big.png", big)
    app.router.add_get("/stream.png", stream)
    return app


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/page.html", "not a PNG or JPEG image (text/html)"),
        ("/missing.png", "HTTP 404"),
        ("/big.png", "larger than 2 MiB"),
        ("/stream.png", "larger than 2 MiB"),
    ],
)
async def test_wecom_qr_refuses_what_is_not_an_image(
    world: World, engine: AsyncEngine, tmp_path: Path, aiohttp_server: ServerFactory, path: str, reason: str
) -> None:
    host = await aiohttp_server(image_host())
    assert await world.sync() == 0
    await set_qr_code(engine, "contact_way", "pkgcard", str(host.make_url(path)))
    out, target = io.StringIO(), tmp_path / "card.png"
    assert await qr_command(world.settings, "pkgcard", str(target), out=out) == 1
    assert "error: cannot download the QR image of 'pkgcard'" in out.getvalue() and reason in out.getvalue()
    assert not target.exists() and not target.with_suffix(".jpg").exists()


async def test_a_jpeg_qr_keeps_its_format_and_gets_the_jpg_extension(
    world: World, engine: AsyncEngine, tmp_path: Path, aiohttp_server: ServerFactory
) -> None:
    host = await aiohttp_server(image_host())
    assert await world.sync() == 0
    await set_qr_code(engine, "join_way", "fans", str(host.make_url("/code.jpg")))
    out = io.StringIO()
    assert await qr_command(world.settings, "fans", str(tmp_path / "card.png"), out=out) == 0, out.getvalue()
    assert (tmp_path / "card.jpg").read_bytes() == JPEG and not (tmp_path / "card.png").exists()
    assert f"written as {tmp_path / 'card.jpg'} (not {tmp_path / 'card.png'})" in out.getvalue()
    assert await qr_command(world.settings, "fans", str(tmp_path / "same.jpeg"), out=out) == 0
    assert (tmp_path / "same.jpeg").read_bytes() == JPEG
