"""``/api/v1/customers``: search, profile (ETag), timeline, tags (here and on the platforms), drips."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import select

from bot.db.models import Customer, OutboxCall
from handlers.api.tables import AuditEntry
from handlers.growth.synced import MP_TAG, WECOM_TAG
from handlers.growth.tables import CustomerTag, SyncedObject, Touch, WeComRelation
from handlers.interactions.tables import Checkin, PointsBalance
from handlers.orders.tables import Order
from handlers.sop.tables import DripEnrolment
from tests.api.support import Api
from tests.support.apps import rows


async def seed(api: Api) -> tuple[int, int, int]:
    """A WeCom friend from pkgcard with an order and a check-in, an OA follower, and one more WeCom friend."""
    now = api.bot.services.clock.now()
    async with api.bot.services.sessions() as s, s.begin():
        friend = Customer(external_userid="wmFriend01", name="小王", created_at=now - timedelta(days=3),
                          updated_at=now, wecom_friend=True, first_channel="pkgcard",
                          first_touch_at=now - timedelta(days=3), purchase_count=1, total_spent_cents=2900,
                          last_purchase_at=now - timedelta(days=1))  # fmt: skip
        follower = Customer(openid="oFollower01", unionid="uFollower01", name="Li", created_at=now - timedelta(days=2),
                            updated_at=now, mp_follower=True)  # fmt: skip
        other = Customer(external_userid="wmOther02", created_at=now - timedelta(days=1), updated_at=now,
                         wecom_friend=True)  # fmt: skip
        s.add_all([friend, follower, other])
        await s.flush()
        s.add_all([
            Touch(customer_id=friend.id, channel_code="pkgcard", platform="wecom_friend", action="friend_added",
                  staff_userid="zhangsan", first=True, occurred_at=now - timedelta(days=3), receipt_id=None),
            WeComRelation(customer_id=friend.id, staff_userid="zhangsan", channel_code="pkgcard",
                          added_at=now - timedelta(days=3)),
            WeComRelation(customer_id=other.id, staff_userid="lisi", added_at=now - timedelta(days=1)),
            CustomerTag(customer_id=friend.id, tag="渠道/包裹卡", source="channel:pkgcard",
                        created_at=now - timedelta(days=3)),
            Order(order_id="A-1", customer_id=friend.id, status="paid", amount_cents=2900, currency="CNY",
                  paid_at=now - timedelta(days=1), received_at=now - timedelta(days=1), payload={}),
            Checkin(customer_id=friend.id, local_day="2026-11-22", checked_at=now - timedelta(hours=20), streak=1,
                    points=5, source="kf"),
            PointsBalance(customer_id=friend.id, balance=5, updated_at=now),
            SyncedObject(kind=WECOM_TAG, key="兴趣/坚果", remote_id="etNuts", fingerprint="f", data={},
                         updated_at=now),
            SyncedObject(kind=MP_TAG, key="旅程/待召回", remote_id="101", fingerprint="f", data={}, updated_at=now),
        ])  # fmt: skip
    return friend.id, follower.id, other.id


async def test_search_filters_and_pages_with_an_opaque_cursor(api: Api) -> None:
    friend, follower, other = await seed(api)
    everyone = await api.get("/customers", key="read")
    assert [c["id"] for c in everyone.body["items"]] == [friend, follower, other]
    assert everyone.body["next_cursor"] is None
    assert [c["id"] for c in (await api.get("/customers?q=li", key="read")).body["items"]] == [follower]
    assert [c["id"] for c in (await api.get("/customers?unionid=uFollower01")).body["items"]] == [follower]
    assert [c["id"] for c in (await api.get(f"/customers?tag={quote('渠道/包裹卡')}")).body["items"]] == [friend]
    assert [c["id"] for c in (await api.get("/customers?channel=pkgcard")).body["items"]] == [friend]
    after = quote((api.bot.services.clock.now() - timedelta(days=2, hours=1)).isoformat())
    assert [c["id"] for c in (await api.get(f"/customers?created_after={after}")).body["items"]] == [follower, other]
    seen, cursor = [], ""
    while True:
        answer = await api.get(f"/customers?limit=2{cursor}")
        seen += [c["id"] for c in answer.body["items"]]
        if answer.body["next_cursor"] is None:
            break
        cursor = f"&cursor={answer.body['next_cursor']}"
    assert seen == [friend, follower, other]
    bad = await api.get("/customers?cursor=%%%")
    assert bad.status == 400 and bad.body["errors"] == [{"field": "cursor", "reason": bad.body["errors"][0]["reason"]}]
    assert (await api.get("/customers?limit=0")).body["errors"][0]["field"] == "limit"
    assert (await api.get("/customers?created_after=yesterday")).status == 400


async def test_profile_has_every_fact_and_an_etag(api: Api) -> None:
    friend, _, _ = await seed(api)
    answer = await api.get(f"/customers/{friend}", key="read")
    body = answer.body
    assert body["identities"]["external_userid"] == "wmFriend01"
    assert body["first_touch"]["channel"] == "pkgcard" and len(body["touches"]) == 1
    assert [t["tag"] for t in body["tags"]] == ["渠道/包裹卡"]
    assert body["orders"] == {
        "count": 1,
        "total_spent_cents": 2900,
        "last_purchase_at": body["orders"]["last_purchase_at"],
    }
    assert body["points_balance"] == 5 and body["checkins"] == 1 and body["drips"] == []
    etag = answer.headers["ETag"]
    same = await api.get(f"/customers/{friend}", headers={"If-None-Match": etag})
    assert same.status == 304 and same.headers["ETag"] == etag
    missing = await api.get("/customers/999999")
    assert missing.status == 404 and missing.headers["Content-Type"].startswith("application/problem+json")


async def test_timeline_in_time_order_across_pages(api: Api) -> None:
    friend, _, _ = await seed(api)
    kinds = [i["kind"] for i in (await api.get(f"/customers/{friend}/timeline")).body["items"]]
    assert kinds == ["touch", "order", "checkin"]
    first = await api.get(f"/customers/{friend}/timeline?limit=2")
    assert [i["kind"] for i in first.body["items"]] == ["touch", "order"]
    rest = await api.get(f"/customers/{friend}/timeline?limit=2&cursor={first.body['next_cursor']}")
    assert [i["kind"] for i in rest.body["items"]] == ["checkin"] and rest.body["next_cursor"] is None


async def test_tags_locally_on_the_platforms_with_drips_and_audit(api: Api) -> None:
    friend, follower, _ = await seed(api)
    refused = await api.post(f"/customers/{friend}/tags", key="read", json={"tags": ["兴趣/坚果"]})
    assert refused.status == 403
    tagged = await api.post(f"/customers/{friend}/tags", key="write", json={"tags": ["兴趣/坚果"]})
    assert tagged.status == 200 and tagged.body["added"] == ["兴趣/坚果"]
    assert tagged.body["tags"] == ["兴趣/坚果", "渠道/包裹卡"]
    again = await api.post(f"/customers/{friend}/tags", key="write", json={"tags": ["兴趣/坚果"]})
    assert again.body["added"] == []
    calls = await rows(api.bot, OutboxCall, OutboxCall.api == "externalcontact/mark_tag")
    assert [c.payload["add_tag"] for c in calls] == [["etNuts"]] and calls[0].payload["userid"] == "zhangsan"
    # The tag that starts the recall drip: the follower is enrolled, and tagged on the Official Account.
    await api.post(f"/customers/{follower}/tags", key="write", json={"tags": ["旅程/待召回"]})
    enrolments = await rows(api.bot, DripEnrolment, DripEnrolment.customer_id == follower)
    assert [(e.drip_id, e.state) for e in enrolments] == [("mp_recall", "active")]
    mp = await rows(api.bot, OutboxCall, OutboxCall.api == "tags/members/batchtagging")
    assert [c.payload for c in mp] == [{"openid_list": ["oFollower01"], "tagid": 101}]
    removed = await api.delete(f"/customers/{friend}/tags/{quote('兴趣/坚果', safe='')}", key="write")
    assert removed.status == 200 and removed.body["removed"] == ["兴趣/坚果"]
    assert await api.bot.count(CustomerTag, CustomerTag.customer_id == friend) == 1
    calls = await rows(api.bot, OutboxCall, OutboxCall.api == "externalcontact/mark_tag")
    assert [c.payload.get("remove_tag") for c in calls] == [None, ["etNuts"]]
    assert (await api.delete(f"/customers/{friend}/tags/兴趣/坚果", key="write")).status == 404
    invalid = await api.post(f"/customers/{friend}/tags", key="write", json={"tags": ["no-group"]})
    assert invalid.status == 400 and invalid.body["errors"][0]["field"] == "tags[0]"
    assert (await api.post(f"/customers/{friend}/tags", key="write", data=b"{")).status == 400
    trail = (await api.get("/audit", key="admin")).body["items"]
    assert [(a["key"], a["method"], a["resource"]) for a in trail][:2] == [
        ("write-key", "DELETE", f"customer:{friend}"),
        ("write-key", "POST", f"customer:{follower}"),
    ]
    assert trail[0]["before"] == {"tags": ["兴趣/坚果", "渠道/包裹卡"]} and trail[0]["after"] == {
        "tags": ["渠道/包裹卡"]
    }
    assert len(await rows(api.bot, AuditEntry)) == 4  # one per write, refused writes none


async def test_drip_enrol_and_stop(api: Api) -> None:
    _, follower, _ = await seed(api)
    assert (await api.post(f"/customers/{follower}/drips/mp_recall", key="read")).status == 403
    started = await api.post(f"/customers/{follower}/drips/mp_recall", key="write")
    assert started.status == 201 and started.body["state"] == "active"
    assert (await api.post(f"/customers/{follower}/drips/mp_recall", key="write")).status == 409
    assert (await api.post(f"/customers/{follower}/drips/no_such_drip", key="write")).status == 404
    profile = await api.get(f"/customers/{follower}")
    assert [d["drip_id"] for d in profile.body["drips"]] == ["mp_recall"]
    stopped = await api.delete(f"/customers/{follower}/drips/mp_recall", key="write")
    assert (
        stopped.status == 200 and stopped.body["state"] == "stopped" and stopped.body["stop_reason"] == "api:write-key"
    )
    assert (await api.delete(f"/customers/{follower}/drips/mp_recall", key="write")).status == 409
    async with api.bot.services.sessions() as s:
        states = set((await s.scalars(select(DripEnrolment.state))).all())
    assert states == {"stopped"}
