"""Periodic jobs run in one transaction each, with their own outbox key scope."""

from __future__ import annotations

from bot.clock import FrozenClock
from bot.config import Settings
from bot.context import Context
from bot.db.models import OutboxCall
from bot.periodic import Job, PeriodicJobs
from handlers import features
from tests.support.apps import ClientFactory, start_bot


async def test_a_job_commits_its_calls_under_its_own_scope(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    bot = await start_bot(aiohttp_client, settings, clock, routers=[])

    async def ping(ctx: Context) -> str:
        ctx.call_platform("wecom", "message/send", {"touser": "lulu"}, key="ping", not_before=clock.now())
        return "ok"

    job = Job("ping", 60, ping)
    jobs = PeriodicJobs(bot.services, [job])
    assert await jobs.run_once(job) == "ok"
    clock.advance(1)
    assert await jobs.run_once(job) == "ok"
    calls = await bot.outbox()
    assert [c.idempotency_key for c in calls] == ["job:ping:20261123T100000:ping", "job:ping:20261123T100001:ping"]
    assert await bot.count(OutboxCall) == 2


def test_the_application_declares_its_jobs() -> None:
    assert [j.name for f in features() for j in f.jobs] == [
        "referral_release",
        "staff_transfer_results",
        "staff_loss_digest",
        "staff_directory",
    ]
