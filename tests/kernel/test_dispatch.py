"""Dispatcher and sweeper: one successful run per receipt, failures retried with back-off, then failed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.clock import FrozenClock
from bot.config import Settings
from bot.context import Context
from bot.db.models import Receipt
from bot.dispatcher import Router
from bot.events import FriendAdded
from tests.support.apps import ClientFactory, start_bot
from tests.support.wire import contact_event, wecom_request


async def test_same_receipt_run_concurrently_commits_once(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    runs: list[int] = []
    r = Router("count")

    @r.on(FriendAdded)
    async def slow_count(event: FriendAdded, ctx: Context) -> None:
        await asyncio.sleep(0.01)
        runs.append(1)

    bot = await start_bot(aiohttp_client, settings, clock, routers=[r])
    params, body = wecom_request(contact_event("add_external_contact", "wm1", 1))
    await bot.client.post("/callback/wecom", params=params, data=body)
    await bot.settle()
    [receipt] = await bot.receipts()
    # A sweeper on another replica re-runs the same receipt: it must find it done and do nothing.
    dispatcher = bot.services.dispatcher
    assert dispatcher is not None
    from bot.inbox import event_from_receipt

    event = event_from_receipt(receipt.platform, receipt.payload)
    assert event is not None
    await asyncio.gather(*(dispatcher.run(receipt.id, event) for _ in range(5)))
    assert len(runs) == 1


async def test_failing_handler_is_retried_by_the_sweeper_then_marked_failed(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    from tests.support.settings import make_settings

    settings = make_settings(db_url, inbox={"max_attempts": 3})
    calls: list[int] = []
    r = Router("flaky")

    @r.on(FriendAdded)
    async def always_fails(event: FriendAdded, ctx: Context) -> None:
        calls.append(1)
        raise RuntimeError("downstream broke")

    bot = await start_bot(aiohttp_client, settings, clock, routers=[r])
    params, body = wecom_request(contact_event("add_external_contact", "wm1", 1))
    await bot.client.post("/callback/wecom", params=params, data=body)
    await bot.settle()
    sweeper = bot.services.sweeper
    assert sweeper is not None
    assert await sweeper.sweep_once() == 0  # backing off: the retry time has not come yet
    for _ in range(2):
        clock.advance(timedelta(minutes=5))
        assert await sweeper.sweep_once() == 1
        await bot.settle()
    [receipt] = await bot.receipts()
    assert len(calls) == 3
    assert receipt.status == "failed"
    assert receipt.error is not None and "downstream broke" in receipt.error
    clock.advance(timedelta(hours=1))
    assert await sweeper.sweep_once() == 0


async def test_sweeper_finishes_a_receipt_left_pending(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    seen: list[str] = []
    r = Router("count")

    @r.on(FriendAdded)
    async def count_it(event: FriendAdded, ctx: Context) -> None:
        seen.append(event.external_userid)

    bot = await start_bot(aiohttp_client, settings, clock, routers=[r])
    async with bot.services.sessions() as s, s.begin():
        from bot.event_parser import from_fields
        from bot.wechat import parse_xml

        fields = parse_xml(contact_event("add_external_contact", "wmLOST", 1))
        ev = from_fields("wecom", fields)
        s.add(
            Receipt(
                dedup_key=ev.dedup_key, platform="wecom", kind=ev.kind, payload=fields,
                received_at=clock.now(), status="pending", attempts=0, lease_until=clock.now(),
            )
        )  # fmt: skip
    clock.advance(1)
    sweeper = bot.services.sweeper
    assert sweeper is not None
    assert await sweeper.sweep_once() == 1
    await bot.settle()
    assert seen == ["wmLOST"]
    clock.advance(3600)
    assert await sweeper.sweep_once() == 0


async def test_one_persons_events_run_in_order_and_different_people_side_by_side(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """The customer added twice in a row (two staff members) is handled one event after the other; another
    customer is not held up behind them (on PostgreSQL, where handler runs are concurrent)."""
    running: set[str] = set()
    overlaps: list[tuple[str, str]] = []
    order: list[str] = []
    r = Router("watch")

    @r.on(FriendAdded)
    async def watch(event: FriendAdded, ctx: Context) -> None:
        for other in running:
            overlaps.append((event.external_userid, other))
        running.add(event.external_userid + event.user_id)
        order.append(event.external_userid + event.user_id)
        await asyncio.sleep(0.05)
        running.discard(event.external_userid + event.user_id)

    bot = await start_bot(aiohttp_client, settings, clock, routers=[r])
    events = [
        contact_event("add_external_contact", "wmA", 1, UserID="lulu"),
        contact_event("add_external_contact", "wmA", 2, UserID="axin"),
        contact_event("add_external_contact", "wmB", 3, UserID="lulu"),
    ]
    for text in events:
        params, body = wecom_request(text)
        assert (await bot.client.post("/callback/wecom", params=params, data=body)).status == 200
    await bot.settle()
    assert order.index("wmAlulu") < order.index("wmAaxin")
    assert not any(a == "wmA" and b.startswith("wmA") for a, b in overlaps)  # never two of wmA at once
    if not settings.database.url.get().startswith("sqlite"):  # SQLite runs one handler transaction at a time
        assert any({a, b[:3]} == {"wmA", "wmB"} for a, b in overlaps)
