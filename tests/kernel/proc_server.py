"""Run the real server in a child process for crash tests: ``python -m tests.kernel.proc_server CONFIG [stall]``.

With ``stall``, a first router blocks every FriendAdded forever, so the process can be killed
after the ack and before the handler ran.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from bot.app import build_app
from bot.config import load_settings
from bot.context import Context
from bot.dispatcher import Router
from bot.events import FriendAdded
from bot.feature import routers_of
from handlers import features


def main() -> None:
    settings = load_settings(sys.argv[1])
    routers = routers_of(features())
    if len(sys.argv) > 2 and sys.argv[2] == "stall":
        stall = Router("stall")

        @stall.on(FriendAdded)
        async def never_finish(event: FriendAdded, ctx: Context) -> None:
            await asyncio.Event().wait()

        routers = [stall, *routers]
    web.run_app(
        build_app(settings, features(), routers=routers), host="127.0.0.1", port=settings.server.port, print=None
    )


if __name__ == "__main__":
    main()
