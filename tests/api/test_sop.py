"""``/api/v1/sop/``: enrolments with their steps, group fires, the preview and the status (the CLI's queries)."""

from __future__ import annotations

from datetime import timedelta

from bot.db.models import Customer
from handlers.sop.tables import GroupFire
from tests.api.support import Api


async def _follower(api: Api) -> int:
    now = api.bot.services.clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        c = Customer(openid="oSop01", name="Sop", created_at=now, updated_at=now, mp_follower=True)
        s.add(c)
        await s.flush()
        return c.id


async def _fire(api: Api) -> None:
    now = api.bot.services.clock.now()
    at = now - timedelta(hours=3)

    def row(post: str, target: str, state: str, chats: list[str], reason: str | None = None) -> GroupFire:
        return GroupFire(post_id=post, fire_at=at, target=target, delivery="wecom_group_task", state=state,
                         chat_ids={"chat_ids": chats}, reason=reason, created_at=at, updated_at=now)  # fmt: skip

    async with api.bot.services.sessions() as s, s.begin():
        s.add_all([
            row("mon_new_arrivals", "post", "done", [], "2 targets"),
            row("mon_new_arrivals", "owner:lulu", "confirmed", ["wrA"]),
            row("mon_new_arrivals", "owner:zhangsan", "sent", ["wrB", "wrC"]),
            row("tue_snack_tips", "post", "missed", [], "3:00:00 late; missed_after is 0:30:00"),
        ])  # fmt: skip


async def test_enrolments_with_their_steps_filtered_and_paged(api: Api) -> None:
    follower = await _follower(api)
    assert (await api.post(f"/customers/{follower}/drips/mp_recall", key="write")).status == 201
    listed = await api.get(f"/sop/enrolments?customer_id={follower}", key="read")
    [enrolment] = listed.body["items"]
    assert (enrolment["drip_id"], enrolment["state"]) == ("mp_recall", "active")
    assert enrolment["steps"] and all(s["state"] == "pending" for s in enrolment["steps"])
    dues = [s["due_at"] for s in enrolment["steps"]]
    assert dues == sorted(dues)
    assert (await api.get("/sop/enrolments?state=stopped")).body["items"] == []
    assert (await api.get("/sop/enrolments?drip_id=mp_recall&state=active")).body["items"] == [enrolment]
    assert (await api.get("/sop/enrolments?drip_id=other")).body["items"] == []
    assert (await api.get("/sop/enrolments?state=lost")).body["errors"][0]["field"] == "state"
    assert (await api.get("/sop/enrolments?customer_id=x")).body["errors"][0]["field"] == "customer_id"
    assert (await api.get("/sop/enrolments", key=None)).status == 401


async def test_fires_with_targets_and_owners_not_confirmed(api: Api) -> None:
    await _fire(api)
    listed = await api.get("/sop/fires", key="read")
    missed, done = listed.body["items"]  # newest first
    assert (missed["post_id"], missed["state"], missed["targets"]) == ("tue_snack_tips", "missed", [])
    assert done["state"] == "done" and done["unconfirmed_owners"] == ["zhangsan"]
    assert [(t["target"], t["state"], t["groups"]) for t in done["targets"]] == [
        ("owner:lulu", "confirmed", 1),
        ("owner:zhangsan", "sent", 2),
    ]
    assert [f["post_id"] for f in (await api.get("/sop/fires?state=sent")).body["items"]] == ["mon_new_arrivals"]
    assert [f["post_id"] for f in (await api.get("/sop/fires?state=missed")).body["items"]] == ["tue_snack_tips"]
    assert (await api.get("/sop/fires?post_id=nope")).body["items"] == []
    first = await api.get("/sop/fires?limit=1")
    rest = await api.get(f"/sop/fires?limit=1&cursor={first.body['next_cursor']}")
    assert [f["id"] for f in first.body["items"] + rest.body["items"]] == [missed["id"], done["id"]]
    assert rest.body["next_cursor"] is None
    assert (await api.get("/sop/fires?state=bogus")).status == 400


async def test_preview_and_status_are_the_cli_figures(api: Api) -> None:
    follower = await _follower(api)
    await api.post(f"/customers/{follower}/drips/mp_recall", key="write")
    await _fire(api)
    preview = await api.get("/sop/preview?days=30", key="read")
    drips = [i for i in preview.body["items"] if i["kind"] == "drip"]
    assert drips and all(i["source"].startswith("mp_recall/") for i in drips)
    assert preview.body["drip_steps_total"] == len(drips)
    assert (await api.get("/sop/preview?days=0")).body["errors"][0]["field"] == "days"
    assert (await api.get("/sop/preview?days=99")).status == 400
    status = await api.get("/sop/status?latest=5", key="read")
    body = status.body
    assert body["drips"] == [{"drip_id": "mp_recall", "states": {"active": 1, "completed": 0, "stopped": 0},
                              "stop_reasons": {}}]  # fmt: skip
    assert body["steps"]["pending"] == len(drips)
    assert body["fires"] == {"confirmed": 1, "sent": 1, "missed": 1}
    assert body["fire_reasons"] == [{"state": "missed", "reason": "… late; missed_after is 0:30:00", "count": 1}]
    assert [f["post_id"] for f in body["latest_fires"]] == ["tue_snack_tips"]
    assert (await api.get("/sop/status?latest=-1")).status == 400
