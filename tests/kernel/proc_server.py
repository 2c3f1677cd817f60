"""Run the real server in a child process for crash tests: ``python -m tests.kernel.proc_server CONFIG [stall]``.

With ``stall``, a first router blocks every FriendAdded forever, so the process can be killed
after the ack and before the handler ran.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from bot.config import load_settings
from bot.context import Context
from bot.dispatcher import Router
from bot.events import FriendAdded
from tests.support.apps import build, feature_routers


def main() -> None:
    settings = load_settings(sys.argv[1])
    routers = feature_routers()
    if len(sys.argv) > 2 and sys.argv[2] == "stall":
        stall = Router("stall")

        @stall.on(FriendAdded)
        async def never_finish(event: FriendAdded, ctx: Context) -> None:
            await asyncio.Event().wait()

        routers = [stall, *routers]
    web.run_app(build(settings, routers=routers), host="127.0.0.1", port=settings.server.port, print=None)


if __name__ == "__main__":
    main()
