"""Drips for WeCom friends and the stops/completion rules: group-send tasks, the monthly quota,
app messages to the staff, stop conditions, ``then.tags`` and ``then.start``."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import FrozenClock
from bot.db.models import OutboxCall
from bot.rig import Rig
from bot.simulator.models import OaTag
from handlers.growth.synced import MP_TAG
from handlers.growth.tables import CustomerTag, SyncedObject
from handlers.sop.drip_worker import DripWorker
from handlers.sop.tables import ContactLedger
from tests.sop.drips import (  # noqa: F401  (the fixtures "rig" and "worker")
    MINUTE,
    MORNING,
    at,
    customer_by,
    drip_rig,
    drip_sends,
    drip_worker,
    enrolments,
    hours,
    ledger,
    pay,
    steps_of,
    tick,
)
from tests.support.apps import rows

NEXT_DAY_10 = MORNING + hours(25)  # 10:00 local on the day after the add


async def test_package_card_friend_gets_a_single_group_send_task_next_day_at_10(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    added = await rig.sim.add_friend("lulu", state="pkgcard", name="王小米")
    await tick(rig, worker)
    assert rig.state.calls_to("externalcontact/add_msg_template") == []
    await at(rig, worker, clock, NEXT_DAY_10)
    task = rig.state.last_call("externalcontact/add_msg_template")
    assert task.errcode == 0
    assert task.body["chat_type"] == "single" and task.body["sender"] == "lulu"
    assert task.body["external_userid"] == [added.external_userid]
    assert "王小米" in task.body["text"]["content"] and "29 元" in task.body["text"]["content"]
    rig.sim.confirm_group_msg(task.response["msgid"])
    assert [d.to for d in rig.state.delivered if d.api == "externalcontact/add_msg_template"] == [added.external_userid]
    [gift, hero] = await steps_of(rig, "pkgcard_followup")
    assert (gift.state, gift.due_at, hero.state) == ("sent", NEXT_DAY_10, "pending")
    [call] = await rows(rig, OutboxCall, OutboxCall.id == gift.outbox_id)
    assert call.result is not None and call.result["msgid"] == task.response["msgid"]  # the task's msgid


async def test_a_customer_at_the_monthly_quota_gets_nothing_and_the_reason_is_recorded(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await tick(rig, worker)
    customer = await customer_by(rig, "external_userid", added.external_userid)
    async with rig.services.sessions() as s, s.begin():  # November: 30 group sends already this month
        for day in range(30):
            s.add(
                ContactLedger(
                    customer_id=customer.id, at=MORNING.replace(day=1) + timedelta(hours=day * 12), category="daily",
                    delivery="wecom_task_single", source="post:earlier", outcome="sent",
                )
            )  # fmt: skip
    await at(rig, worker, clock, NEXT_DAY_10)
    assert rig.state.calls_to("externalcontact/add_msg_template") == []
    [gift, _] = await steps_of(rig, "pkgcard_followup")
    assert gift.state == "skipped" and gift.reason == "group-send quota reached: 30/30 (days_in_month)"
    last = (await ledger(rig, customer.id))[-1]
    assert (last.source, last.outcome, last.reason) == ("drip:pkgcard_followup/gift", "skipped", gift.reason)


async def test_deleting_the_staff_member_stops_the_friend_drip(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await tick(rig, worker)
    await rig.sim.delete_friend_by_customer("lulu", added.external_userid)
    await at(rig, worker, clock, NEXT_DAY_10)
    assert rig.state.calls_to("externalcontact/add_msg_template") == []
    [enrolment] = await enrolments(rig, "pkgcard_followup")
    assert enrolment.stop_reason == "deleted_friend"
    assert {s.state for s in await steps_of(rig, "pkgcard_followup")} == {"cancelled"}


async def test_adding_the_wecom_friend_stops_the_follow_drip(rig: Rig, worker: DripWorker, clock: FrozenClock) -> None:
    openid = (await rig.sim.follow(scene="poster_618", unionid="uSAME")).openid
    await tick(rig, worker)
    clock.advance(hours(1))
    await rig.sim.add_friend("lulu", state="pkgcard", unionid="uSAME")  # profile read links the two rows
    await tick(rig, worker)
    [enrolment] = await enrolments(rig, "mp_48h")
    assert (enrolment.state, enrolment.stop_reason) == ("stopped", "added_wecom_friend")
    await at(rig, worker, clock, MORNING + hours(3))
    assert len(drip_sends(rig, openid)) == 1


async def test_an_order_starts_the_care_drip_as_an_app_message_to_the_staff(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    added = await rig.sim.add_friend("lulu", state="pkgcard", name="王小米")
    await tick(rig, worker)
    await pay(rig, "SO-2001", external_userid=added.external_userid)
    [enrolment] = await enrolments(rig, "pkgcard_followup")
    assert enrolment.stop_reason == "purchased"
    [care] = await steps_of(rig, "first_order_care")
    assert care.due_at == MORNING + hours(3 * 24 + 10)  # day 3 19:00 local
    await at(rig, worker, clock, care.due_at)
    [sent] = [d for d in rig.state.delivered if d.api == "message/send"]
    assert sent.to == "lulu" and "王小米" in sent.body["text"]["content"]
    assert sent.body["agentid"] == rig.services.settings.wecom.agent_id
    [done] = await enrolments(rig, "first_order_care")
    assert done.state == "completed"
    tags = await rows(rig, CustomerTag, CustomerTag.tag == "旅程/首单关怀完成")
    assert [t.source for t in tags] == ["drip:first_order_care"]


async def test_completion_tags_the_customer_and_starts_the_next_drip(
    rig: Rig, worker: DripWorker, clock: FrozenClock
) -> None:
    rig.state.oa_tags[101] = OaTag(id=101, name="新粉48小时完成")
    async with rig.services.sessions() as s, s.begin():
        s.add(SyncedObject(kind=MP_TAG, key="旅程/新粉48小时完成", remote_id="101", fingerprint="x", data={},
                           updated_at=clock.now()))  # fmt: skip
    t0 = clock.now()
    openid = (await rig.sim.follow(scene="poster_618")).openid
    await tick(rig, worker)
    clock.set(t0 + 10 * MINUTE)
    await rig.sim.send_text(openid, "你好")
    for h in (3, 6):
        await at(rig, worker, clock, t0 + hours(h))
    assert [when for when, _ in drip_sends(rig, openid)] == [t0, t0 + hours(3), t0 + hours(6)]
    [done] = await enrolments(rig, "mp_48h")
    assert done.state == "completed"
    customer = await customer_by(rig, "openid", openid)
    tags = await rows(rig, CustomerTag, CustomerTag.customer_id == customer.id, CustomerTag.source == "drip:mp_48h")
    assert [t.tag for t in tags] == ["旅程/新粉48小时完成"]
    assert 101 in rig.state.followers[openid].tag_ids  # tagged on the Official Account too
    [recall] = await steps_of(rig, "mp_recall")
    assert recall.due_at == MORNING + hours(2 * 24 + 11)  # day 2 20:00 local after the completion
