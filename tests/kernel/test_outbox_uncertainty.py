"""The outbox when an answer is lost, a process dies mid-call, or a dependency fails around a call.

A real WeComClient / MpClient talks to the recording fake platform over loopback; the fake can act and
then lose its answer (``LoseAnswer``). Counts come from the fake's record: what the customer received.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert, select, update

from bot.clock import FrozenClock
from bot.config import InstancesConfig, OfficialAccountConfig, OutboxConfig, Secret, WeComConfig
from bot.db.engine import make_engine, sessionmaker
from bot.db.models import Instance, OutboxCall
from bot.instances import Instances, host_key
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.platform import DbTokenStore, MpClient, WeComClient
from bot.platform.repeat import NOT_REPEATABLE
from tests.kernel.fake_platform import START, FakePlatform, LoseAnswer
from tests.support.settings import make_settings

WELCOME = "externalcontact/send_welcome_msg"


class FailingStore(DbTokenStore):
    """The token store, until ``failing`` is set: then every read fails (Redis or the database gone)."""

    failing = False

    async def get(self, key: str) -> Any:
        if self.failing:
            raise ConnectionError("token store unreachable")
        return await super().get(key)


@dataclass
class Rig:
    fake: FakePlatform
    worker: OutboxWorker
    instances: Instances
    clock: FrozenClock
    engine: Any
    store: FailingStore
    worker_with: Callable[[str], OutboxWorker]  # a worker whose Official Account API is at another URL

    async def queue(self, api: str, body: dict[str, Any], *, platform: str = "wecom", deadline_s: float | None = None,
                    key: str = "k") -> int:  # fmt: skip
        now = self.clock.now()
        async with self.engine.begin() as conn:
            res = await conn.execute(
                insert(OutboxCall).values(
                    idempotency_key=key, platform=platform, api=api, payload=body, priority=0, state="pending",
                    attempts=0, created_at=now, next_attempt_at=now,
                    deadline_at=None if deadline_s is None else now + timedelta(seconds=deadline_s),
                )
            )  # fmt: skip
            return int(res.inserted_primary_key[0])

    async def row(self, rid: int) -> OutboxCall:
        async with sessionmaker(self.engine)() as s:
            row = await s.get(OutboxCall, rid)
            assert row is not None
            return row

    async def set(self, rid: int, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(OutboxCall).where(OutboxCall.id == rid).values(**values))


@pytest.fixture
async def rig(db_url: str, aiohttp_server: Any) -> AsyncIterator[Rig]:
    fake = FakePlatform()
    server = await aiohttp_server(fake.app())
    base = str(server.make_url("")).rstrip("/")
    clock = FrozenClock(START)
    engine = make_engine(make_settings(db_url).database)
    instances = Instances(engine, InstancesConfig())
    await instances.register()
    store = FailingStore(sessionmaker(engine), clock)
    async with aiohttp.ClientSession() as http:

        def worker_with(mp_base: str) -> OutboxWorker:
            wecom = WeComClient(
                http, WeComConfig(corp_id="ww1", agent_id=1, secret=Secret("s"), api_base_url=base), store, clock,
                timeout=0.5,
            )  # fmt: skip
            mp = MpClient(
                http, OfficialAccountConfig(app_id="wx1", app_secret=Secret("s"), api_base_url=mp_base), store,
                clock, timeout=0.5,
            )  # fmt: skip
            return OutboxWorker(engine, {"wecom": wecom, "mp": mp}, clock, OutboxConfig(), Metrics(), instances)

        yield Rig(fake, worker_with(base), instances, clock, engine, store, worker_with)
    await engine.dispose()


async def test_a_welcome_whose_answer_was_lost_is_delivered_once_and_counted_delivered(rig: Rig) -> None:
    rig.fake.scripts[WELCOME] = [LoseAnswer(), {"errcode": 41051, "errmsg": "externaluser has started chatting"}]
    rid = await rig.queue(WELCOME, {"welcome_code": "W1", "text": {"content": "hi"}}, deadline_s=20)
    assert await rig.worker.run_one(rid) == "pending"  # the reset: maybe delivered, retried inside 20 s
    row = await rig.row(rid)
    assert row.maybe_sent and row.next_attempt_at <= row.deadline_at  # type: ignore[operator]
    rig.clock.set(row.next_attempt_at)
    assert await rig.worker.run_one(rid) == "sent"  # 41051 after our own lost attempt = delivered
    assert len(rig.fake.calls(WELCOME)) == 2  # the platform took the code once: one welcome


async def test_a_first_attempt_answered_41051_is_not_counted_ours(rig: Rig) -> None:
    rig.fake.scripts[WELCOME] = [{"errcode": 41051, "errmsg": "externaluser has started chatting"}]
    rid = await rig.queue(WELCOME, {"welcome_code": "W1", "text": {"content": "hi"}}, deadline_s=20)
    assert await rig.worker.run_one(rid) == "failed"


@pytest.mark.parametrize("lost", [LoseAnswer(), LoseAnswer(stall=2.0)], ids=["reset", "timeout"])
async def test_a_customer_service_message_whose_answer_was_lost_is_never_sent_twice(rig: Rig, lost: LoseAnswer) -> None:
    rig.fake.scripts["message/custom/send"] = [lost]
    body = {"touser": "o1", "msgtype": "text", "text": {"content": "第二条"}}
    rid = await rig.queue("message/custom/send", body, platform="mp")
    assert await rig.worker.run_one(rid) == "uncertain"
    rig.clock.advance(3600)
    assert await rig.worker.run_due() == 0
    assert len(rig.fake.calls("message/custom/send")) == 1
    assert "answer lost" in ((await rig.row(rid)).last_error or "")


async def test_a_call_that_never_left_is_retried(rig: Rig, unused_tcp_port: int) -> None:
    """Connection refused: the request cannot have reached the platform, so even a non-repeatable call
    is retried."""
    rig.worker = rig.worker_with(f"http://127.0.0.1:{unused_tcp_port}")
    rid = await rig.queue("message/custom/send", {"touser": "o1", "msgtype": "text"}, platform="mp")
    assert await rig.worker.run_one(rid) == "pending"
    assert not (await rig.row(rid)).maybe_sent


async def test_a_failing_token_store_releases_the_row_before_its_deadline(rig: Rig) -> None:
    """Redis / the token store failing is not a lost answer: the row goes back to pending, never stuck."""
    rig.store.failing = True
    rid = await rig.queue(WELCOME, {"welcome_code": "W1"}, deadline_s=20)
    assert await rig.worker.run_one(rid) == "pending"
    row = await rig.row(rid)
    assert row.state == "pending" and row.owner is None and not row.maybe_sent
    assert row.next_attempt_at < row.deadline_at  # type: ignore[operator]


async def test_rate_limited_welcome_backs_off_only_as_far_as_its_deadline(rig: Rig) -> None:
    rig.fake.scripts[WELCOME] = [{"errcode": 45009, "errmsg": "api freq out of limit"}] * 3
    rid = await rig.queue(WELCOME, {"welcome_code": "W1"}, deadline_s=20)
    assert await rig.worker.run_one(rid) == "pending"
    row = await rig.row(rid)
    assert row.next_attempt_at < row.deadline_at  # type: ignore[operator]  # not 60 s later
    rig.clock.set(row.next_attempt_at)
    assert await rig.worker.run_one(rid) == "sent"


async def _dead_instance(rig: Rig) -> str:
    """An instance row of this host whose process has exited (a killed predecessor)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os; print(os.getpid())", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    pid = int(out)
    wall = datetime.now(UTC)
    async with rig.engine.begin() as conn:
        await conn.execute(
            insert(Instance).values(
                id="dead0000", host=host_key(), pid=pid, pid_started="1", started_at=wall, heartbeat_at=wall,
            )
        )  # fmt: skip
    return "dead0000"


async def test_a_welcome_interrupted_by_a_crash_is_repeated_at_once_and_counted_once(rig: Rig) -> None:
    dead = await _dead_instance(rig)
    rig.fake.scripts[WELCOME] = [{"errcode": 41051, "errmsg": "externaluser has started chatting"}]
    rid = await rig.queue(WELCOME, {"welcome_code": "W1"}, deadline_s=20)
    await rig.set(rid, state="sending", owner=dead, attempts=1)
    assert await rig.worker.run_due() == 1  # no lease to wait for: the owner's pid is gone
    assert (await rig.row(rid)).state == "sent"


async def test_an_interrupted_welcome_past_its_deadline_is_unknown_not_expired(rig: Rig) -> None:
    dead = await _dead_instance(rig)
    rid = await rig.queue(WELCOME, {"welcome_code": "W1"}, deadline_s=20)
    await rig.set(rid, state="sending", owner=dead, attempts=1)
    rig.clock.advance(30)
    await rig.worker.run_due()
    assert (await rig.row(rid)).state == "uncertain"
    assert rig.fake.calls(WELCOME) == []


@pytest.mark.parametrize("api", sorted(set(NOT_REPEATABLE) - {"externalcontact/add_msg_template"}))
async def test_an_interrupted_non_repeatable_call_is_not_sent_again(rig: Rig, api: str) -> None:
    dead = await _dead_instance(rig)
    rid = await rig.queue(api, {"touser": "o1"})
    await rig.set(rid, state="sending", owner=dead, attempts=1)
    await rig.worker.run_due()
    assert (await rig.row(rid)).state == "uncertain"
    assert rig.fake.calls(api) == []


async def test_a_live_replicas_call_is_left_alone_and_a_silent_ones_is_taken(rig: Rig) -> None:
    wall = datetime.now(UTC)
    async with rig.engine.begin() as conn:
        await conn.execute(
            insert(Instance),
            [
                {"id": "alive001", "host": "other-host|pid:[1]", "pid": 1, "pid_started": "1",
                 "started_at": wall, "heartbeat_at": wall},
                {"id": "silent01", "host": "other-host|pid:[1]", "pid": 2, "pid_started": "1",
                 "started_at": wall, "heartbeat_at": wall - timedelta(seconds=6)},
            ],
        )  # fmt: skip
    busy = await rig.queue("externalcontact/mark_tag", {"userid": "u"}, key="a")
    lost = await rig.queue("externalcontact/mark_tag", {"userid": "u"}, key="b")
    await rig.set(busy, state="sending", owner="alive001", attempts=1)
    await rig.set(lost, state="sending", owner="silent01", attempts=1)
    assert await rig.worker.run_due() == 1
    assert (await rig.row(busy)).state == "sending"
    assert (await rig.row(lost)).state == "sent"


async def test_a_restarted_process_buries_its_killed_predecessor(rig: Rig) -> None:
    dead = await _dead_instance(rig)
    fresh = Instances(rig.engine, InstancesConfig())
    await fresh.register()
    async with rig.engine.connect() as conn:
        stopped = (await conn.execute(select(Instance.stopped_at).where(Instance.id == dead))).scalar_one()
    assert stopped is not None
    assert dead not in await fresh.live_ids() and rig.instances.id in await fresh.live_ids()
    await fresh.stop()


async def test_a_plain_send_ends_sent_with_the_answer_stored(rig: Rig) -> None:
    rid = await rig.queue("externalcontact/mark_tag", {"userid": "u"})
    assert await rig.worker.run_one(rid) == "sent"
    assert (await rig.row(rid)).result == {"errcode": 0, "errmsg": "ok", "api": "externalcontact/mark_tag"}
