"""``/api/v1/checkins/stats`` and ``/api/v1/lottery/campaigns``: status, kill switch, verify (the CLI's queries)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.clock import FrozenClock
from bot.db.models import Customer
from handlers.api.tables import AuditEntry
from handlers.interactions.content import interactions_of
from handlers.interactions.lottery.state import ensure_campaign
from handlers.interactions.tables import Checkin, Draw
from tests.api.support import Api
from tests.support.apps import rows


async def _customers(api: Api, n: int) -> list[int]:
    now = api.bot.services.clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        made = [Customer(openid=f"oInt{i}", created_at=now, updated_at=now, mp_follower=True) for i in range(n)]
        s.add_all(made)
        await s.flush()
        return [c.id for c in made]


async def test_checkin_stats_per_day_and_streaks(api: Api) -> None:
    a, b = await _customers(api, 2)
    now = api.bot.services.clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        s.add_all([
            Checkin(customer_id=a, local_day="2026-11-22", checked_at=now, streak=1, points=5, source="kf"),
            Checkin(customer_id=a, local_day="2026-11-23", checked_at=now, streak=2, points=5, source="kf"),
            Checkin(customer_id=b, local_day="2026-11-23", checked_at=now, streak=1, points=5, source="mp"),
            Checkin(customer_id=b, local_day="2026-10-01", checked_at=now, streak=9, points=5, source="mp"),
        ])  # fmt: skip
    stats = await api.get("/checkins/stats?days=7", key="read")
    assert stats.body["days"] == [
        {"day": "2026-11-22", "checkins": 1, "customers": 1, "points": 5},
        {"day": "2026-11-23", "checkins": 2, "customers": 2, "points": 10},
    ]
    assert stats.body["total"] == 3 and stats.body["streaks"] == {"1": 1, "2": 1}
    assert (await api.get("/checkins/stats?days=0")).status == 400
    assert (await api.get("/checkins/stats", key=None)).status == 401


async def _state(api: Api) -> None:
    services = api.bot.services
    campaign = interactions_of(services.content).campaigns[0]
    async with services.sessions() as s, s.begin():
        await ensure_campaign(s, services.content, campaign, services.clock.now())


async def test_campaigns_status_and_kill_switch_audited(api: Api) -> None:
    listed = await api.get("/lottery/campaigns", key="read")
    [unbox] = listed.body["items"]
    assert (unbox["id"], unbox["state"], unbox["seed_sha256"], unbox["draws"]) == ("unbox", "open", None, 0)
    assert (await api.post("/lottery/campaigns/unbox/kill", key="admin", json={"reason": "x"})).status == 409
    await _state(api)
    one = await api.get("/lottery/campaigns/unbox", key="read")
    assert len(one.body["seed_sha256"]) == 64 and one.body["stock"] and one.body["winners"]["items"] == []
    assert (await api.get("/lottery/campaigns/unbox", headers={"If-None-Match": one.headers["ETag"]})).status == 304
    assert (await api.get("/lottery/campaigns/nope")).status == 404
    assert (await api.post("/lottery/campaigns/unbox/kill", key="write", json={"reason": "abuse"})).status == 403
    assert (await api.post("/lottery/campaigns/unbox/kill", key="admin", json={})).body["errors"][0][
        "field"
    ] == "reason"
    killed = await api.post("/lottery/campaigns/unbox/kill", key="admin", json={"reason": "刷奖"})
    assert killed.status == 200 and (killed.body["state"], killed.body["killed_reason"]) == ("killed", "刷奖")
    assert (await api.post("/lottery/campaigns/unbox/resume", key="write")).status == 403
    resumed = await api.post("/lottery/campaigns/unbox/resume", key="admin")
    assert resumed.body["state"] == "open" and resumed.body["killed_reason"] is None
    trail = await rows(api.bot, AuditEntry)
    assert [(a.resource, a.after["state"] if a.after else None) for a in trail] == [
        ("campaign:unbox", "killed"),
        ("campaign:unbox", "open"),
    ]


async def test_winners_paginated_and_verify_after_the_end(api: Api, clock: FrozenClock) -> None:
    await _state(api)
    (customer,) = await _customers(api, 1)
    campaign = interactions_of(api.bot.services.content).campaigns[0]
    prize = next(p.id for p in campaign.prizes if p.kind.value != "none")
    now = clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        s.add_all([Draw(campaign_id="unbox", ticket_id=n, customer_id=customer, seq=n, roll="0" * 64, prize_id=prize,
                        drawn_at=now) for n in (1, 2)])  # fmt: skip
    first = await api.get("/lottery/campaigns/unbox?limit=1")
    assert len(first.body["winners"]["items"]) == 1 and first.body["draws"] == 2
    rest = await api.get(f"/lottery/campaigns/unbox?limit=1&cursor={first.body['winners']['next_cursor']}")
    assert [w["seq"] for w in first.body["winners"]["items"] + rest.body["winners"]["items"]] == [1, 2]
    early = await api.post("/lottery/campaigns/unbox/verify", key="admin")
    assert early.status == 409 and "secret" in early.body["detail"]
    assert (await api.post("/lottery/campaigns/unbox/verify", key="write")).status == 403
    clock.set(campaign.ends_at + timedelta(seconds=1))
    verified = await api.post("/lottery/campaigns/unbox/verify", key="admin")
    body = verified.body
    assert verified.status == 200 and body["ok"] is False and body["draws"] == 2  # rolls not from the seed
    assert any("stored roll" in m for m in body["mismatches"]) and len(body["seed"]) == 64
    after = await api.get("/lottery/campaigns/unbox")
    assert datetime.fromisoformat(after.body["revealed_at"]) and after.body["state"] == "closed"
