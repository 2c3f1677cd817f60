"""SOP: customer drips (their due-step worker) and scheduled group posts, within the contact budget."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from bot.feature import Feature
from bot.outbox import PlatformCaller, Reconciler
from bot.services import Services
from handlers.sop import drips, group_sop, group_sop_results, late_entry
from handlers.sop.commands import add_commands
from handlers.sop.content import CONTENT, sop_report
from handlers.sop.drip_steps import run_step
from handlers.sop.drip_worker import DRIP_WORKER, DripWorker
from handlers.sop.group_sop_results import reconcilers
from handlers.sop.group_sop_runtime import install_group_sop, robot_client, robot_keys_path


async def _drip_worker(services: Services) -> AsyncIterator[None]:
    s = services
    worker = DripWorker(s.sessions, s.settings, s.clock, s.rng, s, run_step, s.outbox.notify)
    s.parts[DRIP_WORKER] = worker
    s.wake_hooks.append(worker.wake)
    worker.start()
    yield
    await worker.stop()
    s.parts.pop(DRIP_WORKER)


async def _group_posts(services: Services) -> AsyncIterator[None]:
    """Cron/calendar group posts on the app's scheduler, rebuilt from content at start-up and on reload."""
    install_group_sop(services.scheduler, services)
    services.reloader.hooks.append(lambda: install_group_sop(services.scheduler, services))
    yield


def _robots(services: Services) -> Mapping[str, PlatformCaller]:
    """Group robot webhooks: keys live in a secret file, looked up at call time."""
    if "wecom" not in services.clients:
        return {}
    return {"robot": robot_client(services.clients["wecom"], robot_keys_path(services.settings))}


def _reconcilers(services: Services) -> Mapping[str, Reconciler]:
    """A group-send task whose answer was lost: ask the platform before any re-send."""
    return reconcilers(services)


SOP = Feature(
    "sop",
    content=CONTENT,
    content_reports=(sop_report,),
    routers=(group_sop.router, group_sop_results.router, drips.router, late_entry.router),
    workers=(_drip_worker, _group_posts),
    commands=(add_commands,),
    clients=(_robots,),
    reconcilers=(_reconcilers,),
)
