"""Helpers for the growth tests: small content to sync (``write_content``), the simulator on a loopback
server with settings pointing at it (``serve_sim``), what ``content sync`` recorded (``synced_rows``), and
for journeys on the rig, a synced state without (``pretend_synced``) or with (``sync_content``) the real sync.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock, FrozenClock
from bot.config import Settings
from bot.rig import Rig
from bot.simulator import SimAccounts, SimState, make_sim_app
from handlers.growth.synced import MEDIA, MEDIA_IDS, MP_TAG, WECOM_TAG
from handlers.growth.tables import SyncedObject
from tests.support.settings import make_settings

ServerFactory = Callable[[Any], Awaitable[TestServer]]

TAGS = """
[[tag_groups]]
name = "渠道"
tags = ["包裹卡", "海报", "粉丝群"]

[[tag_groups]]
name = "层级"
platforms = ["wecom"]
tags = ["核心"]
"""

CHANNELS = """
[[channels]]
code = "pkgcard"
name = "包裹卡"
platform = "wecom_friend"
staff = ["lulu", "axin"]
tags = ["渠道/包裹卡"]
welcome = "hi"

[[channels]]
code = "store"
name = "门店"
platform = "wecom_friend"
staff = ["lulu"]
skip_verify = false
welcome = "hi"
default = true

[[channels]]
code = "fans"
name = "粉丝群"
platform = "wecom_group"
chat_ids = ["wrFANS0001", "wrFANS0002"]
room_base_name = "福利群"
room_base_id = 3
tags = ["渠道/粉丝群"]
welcome = "hi"

[[channels]]
code = "poster"
name = "海报"
platform = "mp"
scene_str = "poster_618"
tags = ["渠道/海报"]
welcome = "hi"
default = true
"""

MESSAGES = """
[fallbacks]
nickname = "朋友"

[[messages]]
id = "hi"
text = "你好{nickname}"
"""

CHAT_IDS = ("wrFANS0001", "wrFANS0002")
STAFF = ("lulu", "axin")


def write_content(root: Path, channels: str = CHANNELS, tags: str = TAGS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tags.toml").write_text(tags, encoding="utf-8")
    (root / "channels.toml").write_text(channels, encoding="utf-8")
    (root / "messages.toml").write_text(MESSAGES, encoding="utf-8")
    return root


def seed(state: SimState, staff: tuple[str, ...], chat_ids: tuple[str, ...]) -> None:
    for userid in staff:
        state.add_staff(userid)
    for chat_id in chat_ids:
        state.add_group(staff[0], name=chat_id, chat_id=chat_id)


async def serve_sim(
    aiohttp_server: ServerFactory, db_url: str, content_dir: Path, clock: Clock | None = None
) -> tuple[SimState, Settings]:
    """The simulator on a loopback server (on ``clock``; default: the real clock) and the bot's settings
    pointing at it, with content from ``content_dir``."""
    state = SimState(clock=clock, accounts=SimAccounts.from_settings(make_settings(db_url)))
    server = await aiohttp_server(make_sim_app(state))
    settings = make_settings(
        db_url,
        wecom={"api_base_url": str(server.make_url("/wecom"))},
        official_account={"api_base_url": str(server.make_url("/mp"))},
        content_dir=str(content_dir),
    )
    return state, settings


async def synced_rows(engine: AsyncEngine) -> dict[tuple[str, str], SyncedObject]:
    async with engine.connect() as conn:
        result = await conn.execute(select(SyncedObject.__table__))
        return {(r.kind, r.key): r for r in result}  # type: ignore[misc]


async def pretend_synced(rig: Rig, clock: FrozenClock, wecom_tags: Iterable[str]) -> dict[str, str]:
    """What ``siyu-bot content sync`` leaves behind for corp tags ``"group/name"``: the tags exist in the
    simulated corp and their ids are recorded. Returns ``{"group/name": tag_id}``."""
    ids = {}
    for key in wecom_tags:
        group, name = key.split("/", 1)
        ids[key] = rig.state.add_corp_tag(group, name, by_api=True).id
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s, s.begin():
        for key, tag_id in ids.items():
            s.add(
                SyncedObject(
                    kind=WECOM_TAG, key=key, remote_id=tag_id, fingerprint="x", data={}, updated_at=clock.now()
                )
            )
    return ids


async def sync_content(rig: Rig, clock: FrozenClock) -> dict[str, str]:
    """Run the real ``siyu-bot content sync`` against the simulator: tags, codes, QR, and the welcome's
    attachment files uploaded with ``media/upload`` (their media ids recorded as ``MEDIA``). Returns the
    synced tag ids as ``{"<kind>:group/name": tag_id}`` for WeCom and Official Account tags."""
    import io

    from handlers.growth.sync import sync_command

    out = io.StringIO()
    assert await sync_command(rig.services.settings, False, out, clock=clock) == 0, out.getvalue()
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        rows = (await s.scalars(select(SyncedObject).where(SyncedObject.kind.in_([WECOM_TAG, MP_TAG])))).all()
        tag_ids = {f"{r.kind}:{r.key}": r.remote_id or "" for r in rows}
        media = await s.get(SyncedObject, (MEDIA, "media/gift_29_cover.png"))
        assert media is not None and media.remote_id in rig.state.media
    # what the server's own snapshot refresh (every 30 s) picks up: the welcome door renders attachments from it
    snapshot = rig.services.parts.get(MEDIA_IDS)
    if snapshot is not None:
        await snapshot.refresh(rig.services.sessions)
    return tag_ids
