"""微信客服 (kf) through the simulator: notification → kf/sync_msg (cursor kept) → keyword engine → kf/send_msg."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.rig import Rig
from handlers.interactions.tables import Checkin, KfCursor
from tests.support.apps import start_rig

KFID = "wkSimKf0000000000000000000000001"


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=3)
    yield rig
    await rig.close()


def _sent(rig: Rig) -> list[str]:
    return [d.body["text"]["content"] for d in rig.state.delivered if d.api == "kf/send_msg"]


async def _count(rig: Rig, model: type) -> int:
    async with rig.services.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _cursor(rig: Rig) -> str:
    async with rig.services.sessions() as s:
        return str(await s.scalar(select(KfCursor.cursor).where(KfCursor.open_kfid == KFID)))


async def test_two_notifications_keep_the_cursor_and_answer_each_message_once(rig: Rig) -> None:
    assert (await rig.sim.kf_customer_writes(KFID, "wmKfCustomer1", "签到")).ok
    await rig.drain()
    [first_sync] = rig.state.calls_to("kf/sync_msg")
    assert first_sync.body is not None and "cursor" not in first_sync.body and first_sync.body["token"]
    assert len(first_sync.response["msg_list"]) == 1
    [reply] = _sent(rig)
    assert "签到成功" in reply
    cursor = await _cursor(rig)
    assert cursor and cursor == first_sync.response["next_cursor"]

    await rig.sim.kf_customer_writes(KFID, "wmKfCustomer1", "签到")
    await rig.drain()
    second_sync = rig.state.calls_to("kf/sync_msg")[-1]
    assert second_sync.body is not None and second_sync.body["cursor"] == cursor
    assert [m["text"]["content"] for m in second_sync.response["msg_list"]] == ["签到"]  # only the new one
    assert "今天已经签过到啦" in _sent(rig)[-1]
    assert len(_sent(rig)) == 2 and await _count(rig, Checkin) == 1
    sends = rig.state.calls_to("kf/send_msg")
    assert all(c.errcode == 0 for c in sends)
    assert sends[0].body is not None and sends[0].body["touser"] == "wmKfCustomer1"
    assert sends[0].body["open_kfid"] == KFID and sends[0].body["msgtype"] == "text"


async def test_at_most_five_replies_since_the_customers_last_message(rig: Rig) -> None:
    with rig.sim.withheld():  # six notifications lost; the seventh pulls all seven messages
        for _ in range(6):
            await rig.sim.kf_customer_writes(KFID, "wmKfCustomer2", "签到")
    await rig.sim.kf_customer_writes(KFID, "wmKfCustomer2", "签到")
    await rig.drain()
    assert len(rig.state.calls_to("kf/sync_msg")[-1].response["msg_list"]) == 7
    sends = rig.state.calls_to("kf/send_msg")
    assert len(sends) == 5 and all(c.errcode == 0 for c in sends)  # the platform would refuse a 6th (95018)


async def test_messages_older_than_48_hours_are_not_answered(rig: Rig, clock: FrozenClock) -> None:
    with rig.sim.withheld():
        await rig.sim.kf_customer_writes(KFID, "wmKfCustomer3", "签到")
    clock.advance(timedelta(hours=49))
    await rig.sim.kf_customer_writes(KFID, "wmKfCustomer3", "周末发货吗")  # no rule answers this
    await rig.drain()
    assert len(rig.state.calls_to("kf/sync_msg")[-1].response["msg_list"]) == 2
    assert not rig.state.calls_to("kf/send_msg")
    assert await _count(rig, Checkin) == 0


async def test_paging_through_has_more(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    import handlers.interactions.kf

    monkeypatch.setattr(handlers.interactions.kf, "SYNC_LIMIT", 2)
    with rig.sim.withheld():
        for customer in ("wmA", "wmB", "wmC", "wmD"):
            await rig.sim.kf_customer_writes(KFID, customer, "签到")
    await rig.sim.kf_customer_writes(KFID, "wmE", "签到")
    await rig.drain()
    syncs = rig.state.calls_to("kf/sync_msg")
    assert [len(c.response["msg_list"]) for c in syncs] == [2, 2, 1]
    assert len(_sent(rig)) == 5 and await _count(rig, Checkin) == 5
    assert await _cursor(rig) == syncs[-1].response["next_cursor"]
