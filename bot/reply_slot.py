"""The hand-off between a waiting Official Account HTTP request and the handler run that answers it.

States: ``open`` (the request waits) → ``taken`` (a handler produced a reply and will deliver it
after its commit) or ``expired`` (the budget passed first; the reply, if any, goes out later as a
customer-service message). Single event loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio

from bot.replies import Reply


class ReplySlot:
    def __init__(self) -> None:
        self._state = "open"
        self._future: asyncio.Future[Reply | None] = asyncio.get_running_loop().create_future()

    def try_take(self) -> bool:
        if self._state == "open":
            self._state = "taken"
            return True
        return False

    def untake(self) -> None:
        """The run that took the slot rolled back: open again for the run that follows (if still waiting)."""
        if self._state == "taken" and not self._future.done():
            self._state = "open"

    def expire(self) -> bool:
        """Called by the transport when the budget ran out; False if a reply is already on its way."""
        if self._state == "open":
            self._state = "expired"
            return True
        return False

    def deliver(self, reply: Reply | None) -> None:
        if not self._future.done():
            self._future.set_result(reply)

    async def wait(self, budget: float, grace: float) -> Reply | None:
        """The reply if it came within ``budget`` (or was taken and arrives within ``grace`` more)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), budget)
        except TimeoutError:
            if self.expire():
                return None
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), grace)
        except TimeoutError:
            return None
