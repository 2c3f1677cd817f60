"""Start one benchmark server process on loopback (used by ``bench/callbacks.py``).

    serve_bench.py bare --port 18080
    serve_bench.py app --port 18081 --db-url sqlite+aiosqlite:////tmp/x.db [--handlers]

``bare`` is an aiohttp app with one POST route answering "success" (the ceiling). ``app`` is the real
``bot.app.build_app`` with WeCom's official sample credentials, ``routers=[]`` (intake only) unless
``--handlers`` asks for the default handler modules. Both log at WARNING and have no access log, as
``siyu-bot serve`` runs. The database must already be migrated.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# WeCom official sample vector V1 (docs/platform.md#sample-vectors) — the same credentials the tests use.
WECOM_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
WECOM_AES = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
WECOM_CORP = "ww1436e0e65a779aee"
WECOM_PATH = "/callback/wecom"


def bench_settings(db_url: str, port: int) -> Any:
    from bot.config import build_settings

    return build_settings(
        {
            "server": {"host": "127.0.0.1", "port": port},
            "database": {"url": db_url},
            "wecom": {
                "corp_id": WECOM_CORP,
                "agent_id": 1000002,
                "token": WECOM_TOKEN,
                "encoding_aes_key": WECOM_AES,
                "secret": "bench-corp-secret",
                # Never leave loopback: nothing in the measured path calls the platform anyway.
                "api_base_url": "http://127.0.0.1:9/wecom",
            },
            "logging": {"level": "WARNING", "format": "text"},
        },
        # SIYU_INBOX_* (batch size, lease) may be tuned from the environment for experiments.
        env={k: v for k, v in os.environ.items() if k.startswith("SIYU_INBOX_")},
    )


def bare_app() -> web.Application:
    async def callback(request: web.Request) -> web.Response:
        await request.read()  # read the body like the real endpoint does
        return web.Response(text="success")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(WECOM_PATH, callback)
    app.router.add_get("/healthz", healthz)
    return app


def real_app(db_url: str, port: int, handlers: bool) -> web.Application:
    from bot.app import build_app
    from bot.config import secret_values
    from bot.logs import configure_logging
    from handlers import features

    settings = bench_settings(db_url, port)
    configure_logging(settings.logging.level, settings.logging.format, secret_values(settings))
    return build_app(settings, features(), routers=None if handlers else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["bare", "app"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-url", default="")
    parser.add_argument("--handlers", action="store_true", help="run the default handler routers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.kind == "bare":
        app = bare_app()
    else:
        if not args.db_url:
            parser.error("app needs --db-url")
        app = real_app(args.db_url, args.port, args.handlers)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
