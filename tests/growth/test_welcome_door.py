"""The welcome is queued at the door (bot/door.py): with the receipt, sent without waiting for the handlers.

Real path: encrypted callbacks from the simulator in, the simulator's record of platform calls out; SQLite
and PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.config import Settings
from bot.db.models import Customer, OutboxCall, Receipt
from bot.dispatcher import Dispatcher
from bot.door import NOTE
from bot.events import Event
from bot.rig import Rig
from bot.simulator import Withheld
from handlers.growth.stats import channel_stats
from handlers.growth.synced import MEDIA_IDS
from handlers.growth.tables import Welcome
from tests.growth.helpers import sync_content
from tests.support.apps import start_rig

WELCOME = "externalcontact/send_welcome_msg"


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=7)
    await sync_content(rig, clock)
    yield rig
    await rig.close()


class HeldHandlers:
    """Every handler run waits until :meth:`release`: the handler backlog of a burst, made total."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.release_event = asyncio.Event()
        self.waiting = 0
        run: Callable[..., Awaitable[None]] = dispatcher.run

        async def held(receipt_id: int, event: Event, *args: Any) -> None:
            self.waiting += 1
            await self.release_event.wait()
            await run(receipt_id, event, *args)

        dispatcher.run = held  # type: ignore[method-assign]

    def release(self) -> None:
        self.release_event.set()


async def _rows(rig: Rig, model: type, *where: object) -> list[Any]:
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        return list((await s.scalars(select(model).where(*where))).all())


async def _sent_welcomes(rig: Rig, count: int, timeout: float = 10.0) -> list[Any]:
    """The welcomes sent once the outbox work poked at the door's commit has finished (handlers held)."""
    assert rig.services.outbox is not None
    async with asyncio.timeout(timeout):
        await rig.services.outbox.settle()
    sent = rig.state.calls_to(WELCOME)
    assert len(sent) == count
    return sent


async def test_the_welcome_goes_out_while_every_handler_is_held(rig: Rig) -> None:
    assert rig.services.dispatcher is not None
    held = HeldHandlers(rig.services.dispatcher)
    adds = [await rig.sim.add_friend("lulu", state="pkgcard", name="王小米") for _ in range(3)]
    sent = await _sent_welcomes(rig, 3)
    assert held.waiting == 3  # no handler has run: no customer, no Welcome row, receipts still pending
    assert await _rows(rig, Customer) == [] and await _rows(rig, Welcome) == []
    assert {r.status for r in await _rows(rig, Receipt)} == {"pending"}
    assert sorted(c.body["welcome_code"] for c in sent) == sorted(a.welcome_code or "" for a in adds)
    assert all(c.errcode == 0 for c in sent)
    text = sent[0].body["text"]["content"]
    assert "朋友" in text and "{" not in text  # {nickname}: the neutral fallback at the door
    assert len(sent[0].body["attachments"]) == 1  # media ids from the in-memory snapshot

    held.release()
    await rig.drain()
    assert len(rig.state.calls_to(WELCOME)) == 3  # the handlers queued no second welcome
    for added in adds:
        [customer] = await _rows(rig, Customer, Customer.external_userid == added.external_userid)
        [row] = await _rows(rig, Welcome, Welcome.customer_id == customer.id)
        [call] = await _rows(rig, OutboxCall, OutboxCall.idempotency_key == f"welcome:{added.welcome_code}")
        assert (row.state, row.outbox_id, row.receipt_id) == ("queued", call.id, call.receipt_id)
        assert row.variant_ref == call.payload[NOTE]["variant_ref"]
        assert row.variant_ref in {"welcome_pkgcard/a", "welcome_pkgcard/b"}
        assert call.state == "sent" and call.priority == 0 and NOTE not in call.result
        assert len(rig.state.contacts[added.external_userid].welcomes) == 1
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        stats = await channel_stats(s, rig.services.clock.now())
    assert stats["pkgcard"].welcomes["delivered"] == 3 and sum(stats["pkgcard"].welcomes.values()) == 3


async def test_a_retried_callback_welcomes_once(rig: Rig) -> None:
    added = await rig.sim.add_friend("lulu", state="pkgcard", duplicates=3)
    await rig.drain()
    [sent] = rig.state.calls_to(WELCOME)
    assert sent.body["welcome_code"] == added.welcome_code and sent.errcode == 0
    assert len(await _rows(rig, Receipt)) == 1
    assert len(await _rows(rig, OutboxCall, OutboxCall.api == WELCOME)) == 1
    [row] = await _rows(rig, Welcome)
    assert row.state == "queued" and row.outbox_id is not None


async def test_the_dedup_of_the_receipt_also_drops_a_later_retry_of_the_door_call(rig: Rig) -> None:
    """WeChat retries after our 200 was lost: the receipt is a duplicate, so the door action does not run."""
    from tests.support.wire import contact_event

    xml = contact_event(
        "add_external_contact", "wmRETRY", int(rig.services.clock.now().timestamp()), State="pkgcard",
        WelcomeCode="CODE-RETRY", UserID="lulu",
    )  # fmt: skip
    assert (await rig.sim.deliver(Withheld("wecom", xml))).ok
    await rig.drain()
    assert (await rig.sim.deliver(Withheld("wecom", xml))).ok
    await rig.drain()
    assert len(await _rows(rig, OutboxCall, OutboxCall.idempotency_key == "welcome:CODE-RETRY")) == 1
    assert len(await _rows(rig, Welcome)) == 1


async def test_without_the_media_at_the_door_the_handler_welcomes_as_before(rig: Rig) -> None:
    """An attachment whose media id this process has not seen yet: no door call; the handler reads the
    database and queues the welcome itself (also the path of receipts stored before door actions)."""
    rig.services.parts[MEDIA_IDS]._ids = {}  # a process whose snapshot has not caught up with a `content sync`
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await rig.drain()
    [sent] = rig.state.calls_to(WELCOME)
    assert sent.errcode == 0 and len(sent.body["attachments"]) == 1
    [call] = await _rows(rig, OutboxCall, OutboxCall.idempotency_key == f"welcome:{added.welcome_code}")
    assert NOTE not in call.payload and call.state == "sent"
    [row] = await _rows(rig, Welcome)
    assert (row.state, row.outbox_id) == ("queued", call.id) and row.variant_ref in {
        "welcome_pkgcard/a",
        "welcome_pkgcard/b",
    }


async def test_an_expired_welcome_code_is_not_queued_at_the_door(rig: Rig, clock: FrozenClock) -> None:
    from tests.support.wire import contact_event

    old = clock.now() - timedelta(seconds=21)
    xml = contact_event(
        "add_external_contact", "wmOLD", int(old.timestamp()), State="pkgcard", WelcomeCode="OLD2", UserID="lulu"
    )
    assert (await rig.sim.deliver(Withheld("wecom", xml))).ok
    await rig.drain()
    assert rig.state.calls_to(WELCOME) == []
    [row] = await _rows(rig, Welcome)
    assert row.state == "expired"
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        stats = await channel_stats(s, clock.now())
    assert stats["pkgcard"].welcomes["expired"] == 1


async def test_a_failing_door_action_costs_its_call_not_the_receipt(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    import handlers.growth.friends

    def broken(*_: Any) -> Any:
        raise RuntimeError("bug in a door action")

    monkeypatch.setattr(handlers.growth.friends, "arrival_for", broken)
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    assert added.delivery.ok
    await rig.drain()
    [sent] = rig.state.calls_to(WELCOME)  # queued by the handler instead
    assert sent.errcode == 0
