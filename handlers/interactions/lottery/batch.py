"""Draws at live-stream rate: concurrent draw requests of one campaign share one transaction.

A live stream's "抽奖" brings thousands of draws a minute on ONE campaign, and every draw of a campaign
takes the campaign's row lock (that is what makes ``seq`` the stock-taking order ``lottery verify``
replays). One transaction per draw therefore caps a campaign at one lock hold per draw. Here a draw
request joins its campaign's queue instead; one runner per campaign and process settles everything
queued so far with :func:`handlers.interactions.lottery.draw.draw_many` in ONE transaction (its own, through
:func:`bot.actions.run_action`), then takes what queued up meanwhile. There is no timer: a
request arriving at an idle campaign runs at once (after the event loop lets the requests of the same
instant join), and under load batches grow by themselves to whatever arrived during the previous one.

    result = await draw_batched(services, customer_id, "live", "h5")   # -> DrawResult

The guarantees are those of ``draw_many`` — same limits, same stock, same seq/roll/verify — except that
the draw commits in a transaction of its own: use it where the caller has nothing else to commit with
the draw (an H5 tap). Inside a callback's receipt transaction keep :func:`handlers.interactions.lottery.draw.draw` (on
SQLite that transaction holds the write lock, which a second transaction would wait on).

A batch that fails (the database is gone) raises the same error to each of its callers; it rolled back,
so nothing was drawn. A caller that stops waiting (cancelled) still gets its draw if the batch commits,
as a request whose reply was lost. ``max_batch`` bounds a transaction (and the size of its statements).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.actions import run_action
from bot.background import Background
from bot.context import Runtime
from bot.parts import Part
from handlers.interactions.lottery.draw import DrawRequest, DrawResult, draw_many

MAX_BATCH = 200


@dataclass(slots=True)
class _Queued:
    request: DrawRequest
    future: asyncio.Future[DrawResult]


@dataclass
class LotteryBatcher:
    """Per-campaign queues of draw requests and the runner settling each queue batch by batch."""

    services: Runtime
    max_batch: int = MAX_BATCH
    batches: int = 0  # transactions run (for tests and the benchmark)
    _queues: dict[str, list[_Queued]] = field(default_factory=dict)
    _runners: Background = field(default_factory=lambda: Background("lottery"))

    async def draw(self, customer_id: int, campaign_id: str, source: str) -> DrawResult:
        future: asyncio.Future[DrawResult] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(campaign_id, []).append(_Queued(DrawRequest(customer_id, source), future))
        if campaign_id not in self._runners:
            self._runners.spawn(self._run(campaign_id), f"draws-{campaign_id}", key=campaign_id)
        return await future

    async def _run(self, campaign_id: str) -> None:
        try:
            await asyncio.sleep(0)  # requests made in the same event-loop turn join the first batch
            while queue := self._queues.get(campaign_id):
                batch = queue[: self.max_batch]
                del queue[: self.max_batch]
                await self._settle(campaign_id, batch)
        finally:  # normally the queue is empty here; after a cancellation its requests are failed
            _fail(self._queues.pop(campaign_id, []), RuntimeError("lottery batcher stopped"))

    async def _settle(self, campaign_id: str, batch: list[_Queued]) -> None:
        requests = [q.request for q in batch]
        self.batches += 1
        try:
            results = await run_action(self.services, lambda ctx: draw_many(ctx, campaign_id, requests))
        except Exception as exc:  # every caller of the batch gets the error; the batch rolled back
            _fail(batch, exc)
            return
        except BaseException:
            _fail(batch, RuntimeError("lottery batcher stopped"))
            raise
        for q, result in zip(batch, results, strict=True):
            if not q.future.done():
                q.future.set_result(result)


def _fail(batch: list[_Queued], exc: BaseException) -> None:
    for q in batch:
        if not q.future.done():
            q.future.set_exception(exc)


BATCHER = Part[LotteryBatcher]("lottery.batcher")


def batcher_for(services: Runtime) -> LotteryBatcher:
    """The process's batcher (created on first use)."""
    found = services.parts.get(BATCHER)
    if found is None:
        found = services.parts.setdefault(BATCHER, LotteryBatcher(services))
    return found


async def draw_batched(services: Runtime, customer_id: int, campaign_id: str, source: str) -> DrawResult:
    """One draw in its own transaction, batched with this campaign's concurrent draws in this process."""
    return await batcher_for(services).draw(customer_id, campaign_id, source)
