"""The scripted customer journeys of ``siyu-bot demo`` (kept apart from the wiring in ``handlers/demo/run.py``).

Chapter 1 (:func:`run_story`): the growth loop at 1× — channel codes, welcomes within 20 s, tags, losses,
the channel report. Chapter 2 (:func:`run_drip_story`): the Official Account's 48-hour drip on simulated
time — follow, welcome, step now, +3 h, stopped by a signed order webhook before +6 h.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bot.config import Settings, whsec_key
from bot.db.models import Customer, Receipt
from bot.rig import Rig
from bot.sim_clock import SimClock
from bot.simulator import RecordedCall
from bot.wechat import parse_xml
from handlers.demo.webhooks import settle
from handlers.growth.content import channels_of
from handlers.growth.stats import UNATTRIBUTED, as_rows, channel_stats, render_table
from handlers.orders.webhook import sign
from handlers.sop.drip_worker import DRIP_WORKER
from handlers.sop.tables import DripStepRun

Out = Callable[[str], Any]


class Narrator:
    def __init__(self, rig: Rig, settings: Settings, out: Out) -> None:
        self.rig, self.settings, self.out = rig, settings, out
        self._seen = len(rig.state.calls)  # an earlier chapter's calls are not this one's

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
    await settle(rig)
    n.platform_calls()
    dedup = rig.services.metrics.total("siyu_dedup_hits_total")
    out(f"    receipts stored: {await _receipts(rig)}, duplicates answered without acting: {dedup:g}")

    n.step("Live stream 0611: 20 viewers add the host within the same second")
    await asyncio.gather(*(sim.add_friend("axin", state="live_0611") for _ in range(20)))
    await settle(rig)
    sent = [c for c in rig.state.calls_to("externalcontact/send_welcome_msg") if c.errcode == 0]
    out(f"    → {len(sent)} welcomes delivered so far, every one inside its 20 s window")
    n._seen = len(rig.state.calls)

    n.step("Someone adds staff through an unknown code (unattributed → default channel)")
    await sim.add_friend("lulu", state="wb:1:4285486")
    await settle(rig)
    n.platform_calls()

    n.step("A follower scans the 618 poster QR of the Official Account (passive reply)")
    follower = await sim.follow(scene="poster_618")
    rig.state.followers[follower.openid].unionid = "u-wxm"  # the same person as the package-card customer
    reply = parse_xml(follower.delivery.reply) if follower.delivery.reply else {}
    text = str(reply.get("Content", "")).replace("\n", " / ")
    out(f"    ← passive reply ({reply.get('MsgType')}): “{text[:60]}…”")
    await settle(rig)
    n.platform_calls()
    out("    unionid links the follower to 王小米's WeCom contact: one customer, two touches")

    n.step("Two live-stream customers delete the host; one follower unfollows")
    live = [c for c in rig.state.contacts.values() if "axin" in c.follow and c.follow["axin"].state == "live_0611"]
    for added in live[:2]:
        await sim.delete_friend_by_customer("axin", added.external_userid)
    await sim.unfollow(follower.openid)
    await settle(rig)

    n.step("`siyu-bot stats channels`")
    await print_stats(rig, out)

    clock = rig.state.clock
    if hasattr(clock, "advance"):
        clock.advance(timedelta(days=8))
        n.step("Eight days later: one more package-card customer leaves; 7-day retention is now known")
        first_pkg = next(c for c in rig.state.contacts.values() if c.name == "王小米")
        await sim.delete_friend_by_customer("lulu", first_pkg.external_userid)
        await settle(rig)
        await print_stats(rig, out)


async def _receipts(rig: Rig) -> int:
    async with rig.services.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(Receipt))).scalar_one())


async def print_stats(rig: Rig, out: Out) -> None:
    names = {c.code: c.name for c in channels_of(rig.services.content).channels}
    names[UNATTRIBUTED] = "未归因"
    async with rig.services.sessions() as session:
        stats = await channel_stats(session, rig.state.clock.now())
    for line in render_table(as_rows(stats, names)).splitlines():
        out("    " + line)


async def sync_content(rig: Rig, out: Out, show: bool = True) -> None:
    """Run the real ``content sync`` against the simulated platform and show its plan."""
    import io

    from handlers.growth.sync import sync_command

    buf = io.StringIO()
    code = await sync_command(rig.services.settings, False, buf)
    lines = [line for line in buf.getvalue().splitlines() if line.strip()]
    shown = [line for line in lines if "contact_way" in line or "join_way" in line or "qrcode" in line]
    for line in (shown + lines[-1:]) if show else lines[-1:]:
        out("    " + line)
    if code != 0:
        raise RuntimeError("content sync failed")


# --- chapter 2: the 48-hour Official Account journey, on simulated time ------------------------------------

JOURNEY_START = time(9, 0)  # local: the journey runs in the day, clear of the quiet hours
LAND_REAL_SECONDS = 0.25  # a fast-forward slows to 1× this long (real time) before the moment it aims at
MAX_RUN_SECONDS = 90.0  # a wait longer than this in real time is jumped over instead
TICK_SECONDS = 0.05


class FastForward:
    """Moves the demo's :class:`SimClock` to the next moment of the story.

    At ``speed`` the clock runs sped up and the bot's own workers keep up (the drip poll follows the
    clock); a little before the target it returns to 1× and lands on it, so the step due then runs on the
    dot and a stall of the demo process cannot make it late. A wait that would take longer than
    :data:`MAX_RUN_SECONDS` at ``speed`` (e.g. ``--speed 1``) is jumped over. Messages to ``openid`` are
    printed as the simulated platform receives them, with the simulated local time."""

    def __init__(self, rig: Rig, clock: SimClock, speed: float, out: Out, tz: tzinfo) -> None:
        self.rig, self.clock, self.speed, self.out, self.tz = rig, clock, speed, out, tz
        self.openid = ""
        self._seen = len(rig.state.delivered)

    async def to(self, target: datetime) -> None:
        margin = timedelta(seconds=max(60.0, self.speed * LAND_REAL_SECONDS))
        if 0 < (target - margin - self.clock.now()).total_seconds() / self.speed <= MAX_RUN_SECONDS:
            self.clock.set_speed(self.speed)
            self.rig.services.parts[DRIP_WORKER].wake()  # its poll interval follows the new speed
            while (left := (target - margin - self.clock.now()).total_seconds()) > 0:
                await asyncio.sleep(min(TICK_SECONDS, left / self.speed))
                self.show()
            self.clock.set_speed(1.0)
        if target > self.clock.now():
            self.clock.advance(target - self.clock.now())
        await self.run_due()

    async def run_due(self) -> None:
        """What is due now runs now (the poll would take it within seconds; the story should not wait)."""
        await settle(self.rig)
        await self.rig.services.parts[DRIP_WORKER].run_due()
        await settle(self.rig)
        self.show()

    def show(self) -> None:
        for d in self.rig.state.delivered[self._seen :]:
            if d.to == self.openid:
                when = d.at.astimezone(self.tz).strftime("%m-%d %H:%M:%S")
                self.out(f"    → [{when}] {d.api} to the follower: {_content(d.body)}")
        self._seen = len(self.rig.state.delivered)


def _content(body: dict[str, Any]) -> str:
    kind = str(body.get("msgtype", "?"))
    if kind == "text":
        return "“" + str(body.get("text", {}).get("content", "")).strip().split("\n")[0][:40] + "”"
    return f"[{kind}]"


def passive_reply(xml: str) -> str:
    reply = parse_xml(xml) if xml else {}
    return f"← passive reply ({reply.get('MsgType')}): “{str(reply.get('Content', '')).strip().split(chr(10))[0][:40]}”"


def next_local(after: datetime, at: time, tz: tzinfo) -> datetime:
    local = after.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tzinfo=tz)
    return candidate if candidate > local + timedelta(minutes=30) else candidate + timedelta(days=1)


async def run_drip_story(rig: Rig, settings: Settings, out: Out, clock: SimClock, speed: float) -> None:
    """Follow through a channel → welcome passive reply → drip step now → +3 h → order paid → no +6 h."""
    n, ff = Narrator(rig, settings, out), FastForward(rig, clock, speed, out, settings.tz)
    clock.advance(next_local(clock.now(), JOURNEY_START, settings.tz) - clock.now())
    t0 = clock.now()
    n.step(f"Chapter 2 — the 48-hour journey (drip mp_48h: now, +3 h, +6 h); simulated clock at {speed:g}×")
    n.step("An ad reader scans the 618 poster QR code and follows the Official Account")
    followed = await rig.sim.follow(scene="poster_618")
    ff.openid = followed.openid
    out("    " + passive_reply(followed.delivery.reply or ""))
    await ff.run_due()
    await ff.to(t0 + timedelta(minutes=10))
    n.step("The reader asks a question (the 48-hour customer-service window opens)")
    asked = await rig.sim.send_text(followed.openid, "优惠券怎么用？")
    if asked.reply:
        out("    " + passive_reply(asked.reply))
    await ff.run_due()
    n.step("Fast-forward to +3 h: the second step is due")
    await ff.to(t0 + timedelta(hours=3))
    n.step("Fast-forward to +4 h")
    await ff.to(t0 + timedelta(hours=4))
    n.step("The shop reports the order as paid: a signed POST /webhooks/orders")
    paid_at = clock.now()
    status, body = await post_order(rig, settings, followed.openid, f"SO-DEMO-{followed.openid[-6:]}")
    out(f"    ← {status} {body}")
    await ff.run_due()
    n.step("Fast-forward to +6 h, when the third step was due")
    await ff.to(t0 + timedelta(hours=6))
    for line in await journey_lines(rig, followed.openid, settings.tz):
        out("    " + line)
    n.step("Fast-forward to +48 h")
    await ff.to(t0 + timedelta(hours=48))
    steps = [r for r in await journey_lines(rig, followed.openid, settings.tz) if r.startswith("mp_48h")]
    mine = [d.at for d in rig.state.delivered if d.to == followed.openid]
    after = sum(at > paid_at for at in mine)
    n.step(f"48 hours later: {sum(r.endswith(': sent') for r in steps)} of {len(steps)} drip steps sent, "
           f"{len(mine)} messages to the follower in all, {after} after the order")  # fmt: skip


async def post_order(rig: Rig, settings: Settings, openid: str, order_id: str) -> tuple[int, str]:
    """An ``order.paid`` signed the Standard Webhooks way (docs/webhooks.md), stamped with simulated time."""
    now = rig.state.clock.now()
    data = {"order_id": order_id, "amount_cents": 5900, "currency": "CNY", "paid_at": now.isoformat(),
            "customer": {"openid": openid}}  # fmt: skip
    raw = json.dumps({"type": "order.paid", "data": data}, separators=(",", ":")).encode()
    msg_id, stamp = f"msg_{order_id}", str(int(now.timestamp()))
    signature = sign(whsec_key(settings.webhooks.orders_secret.get()), msg_id, stamp, raw)
    headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": stamp,
               "webhook-signature": signature}  # fmt: skip
    async with (
        aiohttp.ClientSession() as http,
        http.post(rig.base_url + settings.webhooks.orders_path, data=raw, headers=headers) as response,
    ):
        return response.status, await response.text()


async def journey_lines(rig: Rig, openid: str, tz: tzinfo) -> list[str]:
    async with rig.services.sessions() as s:
        rows = (await s.execute(
            select(DripStepRun).join(Customer, Customer.id == DripStepRun.customer_id)
            .where(Customer.openid == openid).order_by(DripStepRun.due_at, DripStepRun.id)
        )).scalars().all()  # fmt: skip
    return [
        f"{r.drip_id} step {r.step_id} due {r.due_at.astimezone(tz).strftime('%m-%d %H:%M')}: {r.state}"
        + (f" ({r.reason})" if r.reason else "")
        for r in rows
    ]
