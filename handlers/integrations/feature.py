"""Outbound webhooks: every domain event, queued in its own transaction, signed and delivered at least once."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.feature import Feature
from bot.services import Services
from handlers.integrations import enqueue
from handlers.integrations.commands import add_commands
from handlers.integrations.delivery import WEBHOOK_WORKER, DeliveryWorker


async def _delivery_worker(services: Services) -> AsyncIterator[None]:
    worker = DeliveryWorker(services, services.settings.webhooks)
    services.parts[WEBHOOK_WORKER] = worker
    services.wake_hooks.append(worker.wake)
    worker.start()
    yield
    await worker.stop(services.settings.server.shutdown_grace_seconds)
    services.wake_hooks.remove(worker.wake)
    services.parts.pop(WEBHOOK_WORKER)


WEBHOOKS = Feature("webhooks", routers=(enqueue.router,), workers=(_delivery_worker,), commands=(add_commands,))
