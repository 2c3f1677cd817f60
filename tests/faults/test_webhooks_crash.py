"""``kill -9`` between the commit and the delivery: an outbound webhook is delayed, never lost.

A real ``siyu-bot serve`` process (tests/faults/harness.py) with an endpoint (``siyu-bot webhooks add``,
loopback allowed) on a receiver in this test process that verifies every delivery with
``standardwebhooks`` and dedupes on ``webhook-id`` (tests/integrations/receiver.py). The receiver answers
its first requests 500 (those deliveries go back to ``pending`` with a retry due) and then stalls (the
bot's requests stay in flight, their rows ``sending``), while a burst of new WeCom friends arrives; the
process is killed with ``kill -9`` mid-burst, the receiver lets the stalled requests finish (it stores
them; their answers go nowhere) and the process is restarted. Every event the simulator's record implies
— one ``customer.created``, ``customer.touched`` and ``customer.tags_changed`` per new customer — must
reach the receiver, each ``webhook-id`` processed once, every signature valid.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from handlers.integrations.tables import WebhookDelivery
from tests.faults.harness import FaultHarness, reset_postgres
from tests.faults.scenarios import sqlite_url
from tests.integrations.receiver import Receiver

pytestmark = [pytest.mark.faults, pytest.mark.slow]

N, RATE = 60, 30.0  # 60 new friends over 2 s
KILL_AFTER = 1.0  # seconds into the burst
FAIL_FIRST = 20  # the receiver's first answers are 500: those deliveries wait for their retry (5 s)
PER_CUSTOMER = ("customer.created", "customer.touched", "customer.tags_changed")  # a new friend via pkgcard
ALLOW_LOOPBACK = "\n[webhooks]\nallow_private_targets = true\n"
DELIVERED_WITHIN = 25.0  # seconds after the welcomes settled (a 500'd delivery retries 5 s ± 10 % later)


@dataclass
class WebhookCrash:
    """What the receiver saw, and the deliveries' states in the database at the kill and at the end."""

    customers: list[str]  # external_userids of the burst (the simulator's record)
    acked: int  # callbacks the bot acknowledged
    welcomes: str  # the harness's summary of the welcomes (the bot's other duty during the crash)
    at_kill: dict[str, int]  # delivery states right after the kill
    at_end: dict[str, int]
    stalled: int  # requests held in flight by the receiver when the process was killed
    per_customer: dict[str, Counter[str]] = field(default_factory=dict)  # event type → external_userid → count
    received: int = 0  # verified requests, repeats included
    distinct: int = 0  # distinct webhook-ids (each processed once)
    refused: int = 0  # requests whose signature did not verify
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{len(self.customers)} customers, acked {self.acked}; deliveries at the kill {self.at_kill} "
            f"({self.stalled} requests in flight), at the end {self.at_end}; receiver: {self.distinct} webhook-ids, "
            f"{self.received - self.distinct} repeats dropped by webhook-id, {self.refused} refused; "
            f"{self.seconds:.1f} s; welcomes: {self.welcomes}"
        )


async def states(db_url: str) -> dict[str, int]:
    """Deliveries per state; ``pending`` ones already tried (a retry due) count as ``retry``."""
    d = WebhookDelivery
    engine = create_async_engine(db_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            tried = d.attempts > 0
            rows = (await conn.execute(select(d.state, tried, func.count()).group_by(d.state, tried))).all()
    finally:
        await engine.dispose()
    out: dict[str, int] = {}
    for state, was_tried, n in rows:
        key = "retry" if state == "pending" and was_tried else str(state)
        out[key] = out.get(key, 0) + int(n)
    return out


async def kill_between_commit_and_delivery(workdir: Path, db_url: str) -> WebhookCrash:
    started = time.monotonic()
    receiver = await Receiver().start()
    try:
        async with FaultHarness(workdir, db_url, extra_config=ALLOW_LOOPBACK) as h:
            await h.prepare()
            added = await h.cli("webhooks", "add", receiver.url, "--events", "*")
            secret = re.search(r"^secret: (whsec_\S+)$", added, re.M)
            assert secret is not None, "webhooks add printed no secret"
            receiver.secret = secret.group(1)
            receiver.fail_next = FAIL_FIRST
            receiver.gate.clear()  # after the failures: every request stalls until the kill
            bot = await h.spawn("a")
            burst = await h.burst(h.simulator_for(bot), N, RATE)
            await asyncio.sleep(KILL_AFTER)
            for _ in range(300):  # up to 3 s more: until a request is held in flight by the receiver
                if receiver.stalled:
                    break
                await asyncio.sleep(0.01)
            stalled = receiver.stalled
            bot.kill9()
            at_kill = await states(db_url)
            receiver.gate.set()  # the stalled requests are stored; their answers go to a dead process
            restarted = await h.spawn("a")
            welcomes = await h.settle(burst, "kill -9 mid-burst", restarted_at=restarted.started_at)
            customers = [a.external_userid for a in await burst.added()]
            deadline = time.monotonic() + DELIVERED_WITHIN
            at_end = await states(db_url)
            while set(at_end) != {"delivered"} and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                at_end = await states(db_url)
    finally:
        await receiver.close()
    per_customer: dict[str, Counter[str]] = {kind: Counter() for kind in PER_CUSTOMER}
    for event in receiver.events:
        if event["type"] in per_customer:
            per_customer[event["type"]][event["data"]["customer"]["external_userid"]] += 1
    return WebhookCrash(
        customers=customers, acked=welcomes.acked, welcomes=welcomes.summary(), at_kill=at_kill, at_end=at_end,
        stalled=stalled, per_customer=per_customer, received=sum(receiver.received.values()),
        distinct=len(receiver.received), refused=receiver.refused, seconds=time.monotonic() - started,
    )  # fmt: skip


def assert_all_delivered_once(run: WebhookCrash) -> None:
    print(run.summary())
    assert run.acked == N, "callbacks lost on the platform side: the harness, not the bot"
    assert run.stalled > 0 and run.at_kill.get("sending", 0) > 0, f"nothing was in flight at the kill: {run}"
    assert run.at_kill.get("retry", 0) > 0, f"no delivery was waiting for a retry at the kill: {run.at_kill}"
    assert run.at_end == {"delivered": run.distinct}, run.summary()
    assert run.refused == 0, "every delivery is signed with the endpoint's secret"
    # the requests in flight at the kill were stored by the receiver and sent again by the new process
    assert run.received - run.distinct >= run.stalled, "the stalled deliveries were not sent again"
    for kind, seen in run.per_customer.items():
        assert seen == Counter(run.customers), f"{kind}: not exactly one per new customer: {seen}"
    assert run.distinct == len(PER_CUSTOMER) * N, "an event no customer of the burst caused, or one twice"


async def test_sqlite_kill_9_between_commit_and_delivery_still_delivered(tmp_path: Path) -> None:
    assert_all_delivered_once(await kill_between_commit_and_delivery(tmp_path, sqlite_url(tmp_path)))


@pytest.mark.postgres
async def test_postgres_kill_9_between_commit_and_delivery_still_delivered(tmp_path: Path, pg_url: str) -> None:
    await reset_postgres(pg_url)
    assert_all_delivered_once(await kill_between_commit_and_delivery(tmp_path, pg_url))
