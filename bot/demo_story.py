"""The scripted customer journey of ``siyu-bot demo`` (kept apart from the wiring in ``bot/demo.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.config import Settings
from bot.db.models import Receipt
from bot.rig import Rig
from bot.simulator import RecordedCall
from bot.stats import UNATTRIBUTED, as_rows, channel_stats, render_table
from bot.wechat import parse_xml

Out = Callable[[str], Any]


class Narrator:
    def __init__(self, rig: Rig, settings: Settings, out: Out) -> None:
        self.rig, self.settings, self.out = rig, settings, out
        self._seen = 0

    def step(self, title: str) -> None:
        local = self.rig.state.clock.now().astimezone(self.settings.tz).strftime("%m-%d %H:%M:%S")
        self.out(f"\n[{local}] {title}")

    def summarise_calls(self) -> None:
        calls = [c for c in self.rig.state.calls[self._seen :] if c.api not in ("gettoken", "stable_token")]
        counts: dict[str, int] = {}
        for call in calls:
            counts[call.api] = counts.get(call.api, 0) + 1
        summary = ", ".join(f"{api} ×{n}" for api, n in counts.items()) or "none"
        self.out(f"    → platform calls: {summary}")
        self._seen = len(self.rig.state.calls)

    def platform_calls(self) -> None:
        """Print the platform calls the bot made since the last step (what WeChat received)."""
        for call in self.rig.state.calls[self._seen :]:
            if call.api in ("gettoken", "stable_token"):
                continue
            self.out("    → " + describe(call))
        self._seen = len(self.rig.state.calls)


def describe(call: RecordedCall) -> str:
    body: dict[str, Any] = call.body if isinstance(call.body, dict) else {}
    ok = "ok" if call.errcode == 0 else f"errcode {call.errcode}"
    if call.api == "externalcontact/send_welcome_msg":
        text = str(body.get("text", {}).get("content", "")).strip().replace("\n", " / ")
        kinds = ",".join(a.get("msgtype", "?") for a in body.get("attachments", []))
        return f"send_welcome_msg ({ok}): “{text[:60]}…” + [{kinds}]"
    if call.api == "externalcontact/mark_tag":
        return f"mark_tag ({ok}): {body.get('external_userid')} +{len(body.get('add_tag', []))} tags"
    if call.api == "tags/members/batchtagging":
        return f"OA batchtagging ({ok}): tag {body.get('tagid')}"
    return f"{call.method} {call.api} ({ok})"


async def run_story(rig: Rig, settings: Settings, out: Out) -> None:
    n = Narrator(rig, settings, out)
    sim = rig.sim
    n.step("Operator: `siyu-bot content sync` makes the platform match content/ (tags, codes, QR)")
    await sync_content(rig, out)
    n.summarise_calls()
    n.step("…and once more: nothing changed, so no write call at all")
    await sync_content(rig, out, show=False)
    n.summarise_calls()

    n.step("A customer scans the 包裹卡 (package card) code of staff lulu; WeChat delivers it 4 times")
    await sim.add_friend("lulu", state="pkgcard", name="王小米", unionid="u-wxm", duplicates=3)
    await rig.drain()
    n.platform_calls()
    dedup = rig.services.metrics.total("siyu_dedup_hits_total")
    out(f"    receipts stored: {await _receipts(rig)}, duplicates answered without acting: {dedup:g}")

    n.step("Live stream 0611: 20 viewers add the host within the same second")
    await asyncio.gather(*(sim.add_friend("axin", state="live_0611") for _ in range(20)))
    await rig.drain()
    sent = [c for c in rig.state.calls_to("externalcontact/send_welcome_msg") if c.errcode == 0]
    out(f"    → {len(sent)} welcomes delivered so far, every one inside its 20 s window")
    n._seen = len(rig.state.calls)

    n.step("Someone adds staff through an unknown code (unattributed → default channel)")
    await sim.add_friend("lulu", state="wb:1:4285486")
    await rig.drain()
    n.platform_calls()

    n.step("A follower scans the 618 poster QR of the Official Account (passive reply)")
    follower = await sim.follow(scene="poster_618")
    rig.state.followers[follower.openid].unionid = "u-wxm"  # the same person as the package-card customer
    reply = parse_xml(follower.delivery.reply) if follower.delivery.reply else {}
    text = str(reply.get("Content", "")).replace("\n", " / ")
    out(f"    ← passive reply ({reply.get('MsgType')}): “{text[:60]}…”")
    await rig.drain()
    n.platform_calls()
    out("    unionid links the follower to 王小米's WeCom contact: one customer, two touches")

    n.step("Two live-stream customers delete the host; one follower unfollows")
    for added in list(rig.state.contacts.values())[1:3]:
        await sim.delete_friend_by_customer("axin", added.external_userid)
    await sim.unfollow(follower.openid)
    await rig.drain()

    n.step("`siyu-bot stats channels`")
    await print_stats(rig, out)

    clock = rig.state.clock
    if hasattr(clock, "advance"):
        clock.advance(timedelta(days=8))
        n.step("Eight days later: one more package-card customer leaves; 7-day retention is now known")
        first_pkg = next(c for c in rig.state.contacts.values() if c.name == "王小米")
        await sim.delete_friend_by_customer("lulu", first_pkg.external_userid)
        await rig.drain()
        await print_stats(rig, out)


async def _receipts(rig: Rig) -> int:
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(Receipt))).scalar_one())


async def print_stats(rig: Rig, out: Out) -> None:
    assert rig.services.sessions is not None
    names = {c.code: c.name for c in rig.services.content.channels}
    names[UNATTRIBUTED] = "未归因"
    async with rig.services.sessions() as session:
        stats = await channel_stats(session, rig.state.clock.now())
    for line in render_table(as_rows(stats, names)).splitlines():
        out("    " + line)


async def sync_content(rig: Rig, out: Out, show: bool = True) -> None:
    """Run the real ``content sync`` against the simulated platform and show its plan."""
    import io

    from bot.sync import sync_command

    buf = io.StringIO()
    code = await sync_command(rig.services.settings, False, buf)
    lines = [line for line in buf.getvalue().splitlines() if line.strip()]
    shown = [line for line in lines if "contact_way" in line or "join_way" in line or "qrcode" in line]
    for line in (shown + lines[-1:]) if show else lines[-1:]:
        out("    " + line)
    if code != 0:
        raise RuntimeError("content sync failed")
