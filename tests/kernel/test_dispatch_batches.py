"""Group commit of handler runs (bot/batches.py, bot/dispatcher.py): receipts that queue up while handlers run
share one transaction; a failing receipt rolls its batch back and only its own failure is recorded; a batch
cut by its time budget leaves the receipts it did not reach pending, as if never touched."""

from __future__ import annotations

import asyncio
import collections

from sqlalchemy import select

from bot.clock import FrozenClock
from bot.context import Context
from bot.db.models import OutboxCall, Receipt
from bot.dispatcher import Router
from bot.events import FriendAdded, TextReceived
from bot.replies import TextReply
from tests.support.apps import ClientFactory, RunningBot, start_bot
from tests.support.settings import make_settings
from tests.support.wire import contact_event, mp_request, mp_text, wecom_request


def _counter(bot: RunningBot, name: str) -> float:
    for metric in bot.services.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


async def _burst(bot: RunningBot, users: list[str]) -> None:
    """One new friend per user, all at once (the inbox writer stores them together, the handlers of the
    first ones are still running when the rest are submitted), then wait for every handler run."""

    async def post(n: int, user: str) -> None:
        params, body = wecom_request(contact_event("add_external_contact", user, n + 1))
        assert (await bot.client.post("/callback/wecom", params=params, data=body)).status == 200

    await asyncio.gather(*(post(n, user) for n, user in enumerate(users)))
    await bot.settle()


def _router(runs: collections.Counter[str], bad: str = "", pause: float = 0.01) -> Router:
    r = Router("batched")

    @r.on(FriendAdded)
    async def queue_a_call(event: FriendAdded, ctx: Context) -> None:
        runs[event.external_userid] += 1
        await asyncio.sleep(pause)
        ctx.call_platform("wecom", "externalcontact/get", {"external_userid": event.external_userid}, key="get")
        if event.external_userid == bad:
            raise RuntimeError("this customer's handler is broken")

    return r


async def test_queued_receipts_share_a_transaction_and_one_failure_stays_its_own(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    runs = collections.Counter[str]()
    users = [f"wm{n:02d}" for n in range(12)]
    bot = await start_bot(aiohttp_client, make_settings(db_url), clock, routers=[_router(runs, bad="wm07")])
    await _burst(bot, users)

    receipts = {r.payload["ExternalUserID"]: r for r in await bot.receipts()}
    calls = await bot.outbox()
    per_receipt = collections.Counter(c.receipt_id for c in calls)
    for user in users:
        receipt = receipts[user]
        if user == "wm07":  # rolled back, its attempt and error recorded; the sweeper retries it later
            assert (receipt.status, receipt.attempts) == ("pending", 1)
            assert receipt.error is not None and "broken" in receipt.error
            assert per_receipt[receipt.id] == 0
        else:  # committed once, whether in the batch or alone after the batch rolled back
            assert (receipt.status, receipt.attempts, receipt.error) == ("done", 1, None)
            assert per_receipt[receipt.id] == 1
    batches = _counter(bot, "siyu_handler_batches_total")
    batched = _counter(bot, "siyu_handler_batched_receipts_total")
    assert batched == len(users) - 1  # every good receipt committed once
    assert batches < batched  # some transaction held several receipts
    assert max(runs.values()) <= 2 and runs["wm07"] == 2  # the batch, then alone


async def test_a_batch_cut_by_its_time_budget_leaves_the_rest_untouched(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    runs = collections.Counter[str]()
    users = [f"wm{n:02d}" for n in range(8)]
    settings = make_settings(db_url, inbox={"handler_batch_ms": 1})
    bot = await start_bot(aiohttp_client, settings, clock, routers=[_router(runs, pause=0.005)])
    await _burst(bot, users)

    receipts = await bot.receipts()
    assert [(r.status, r.attempts, r.error) for r in receipts] == [("done", 1, None)] * len(users)
    assert runs == {user: 1 for user in users}  # claimed but not reached: released, then run once
    assert len(await bot.outbox()) == len(users)
    assert _counter(bot, "siyu_handler_batches_total") == len(users)  # the budget ends each after one


async def test_a_passive_reply_survives_its_batch_rolling_back(
    aiohttp_client: ClientFactory, db_url: str, clock: FrozenClock
) -> None:
    """The reply a handler planned in a batch that rolled back is not sent; the receipt's own run (alone)
    answers the waiting request."""
    r = Router("replies")

    @r.on(TextReceived)
    async def answer(event: TextReceived, ctx: Context) -> TextReply | None:
        await asyncio.sleep(0.01)
        if event.content == "boom":
            raise RuntimeError("broken")
        return TextReply(f"got {event.content}")

    bot = await start_bot(aiohttp_client, make_settings(db_url), clock, routers=[r])

    async def send(openid: str, text: str, msg_id: int) -> str:
        params, body = mp_request(mp_text(openid, text, msg_id, msg_id))
        response = await bot.client.post("/callback/mp", params=params, data=body)
        return await response.text()

    answers = await asyncio.gather(*(send(f"o-{n}", "boom" if n == 3 else f"hi {n}", 10 + n) for n in range(6)))
    await bot.settle()
    assert answers[3] == "success"  # the broken one: no reply
    assert all(a != "success" and "<Encrypt>" in a for i, a in enumerate(answers) if i != 3)
    async with bot.services.sessions() as s:
        done = (await s.scalars(select(Receipt.status).order_by(Receipt.id))).all()
        assert list(done).count("done") == 5
        assert (await s.scalars(select(OutboxCall))).all() == []  # no late reply: each went inline
