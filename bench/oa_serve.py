"""Servers for ``bench/oa_replies.py``: one process each, all answering Official Account safe-mode callbacks.

    oa_serve.py bare --port P       aiohttp: verify + decrypt + parse, a fixed encrypted reply, nothing stored
    oa_serve.py app --port P --db-url URL --platform-port Q
                                    siyu-bot: bot.app.build_app, default handlers, the shipped content/
                                    (--defer-handlers: diagnostic, receipts stored and replies planned only)
    oa_serve.py werobot --port P    WeRoBot's standard deployment: werobot.run (bottle "auto"), default session
    oa_serve.py platform --port Q   a stand-in WeChat API answering every call with errcode 0 (for the outbox)
    gunicorn -w 3 'oa_serve:flask_app()'   Flask + wechatpy (run from bench/ or with --chdir bench)

All share the credentials below and answer on ``/callback/mp``. The peers reply with a fixed text to
``subscribe`` and ``text``, as in their tutorials; siyu-bot answers with its content (the channel's
welcome, the keyword's answer).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The simulator's Official Account (bot/simulator/state.py SimAccounts): safe mode, EncodingAESKey set.
APP_ID = "wxsimapp00000001"
APP_SECRET = "bench-app-secret-value"
ORIGINAL_ID = "gh_sim000000001"
TOKEN = "simMpToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PATH = "/callback/mp"
FIXED_REPLY = "欢迎关注！回复「礼包」领取新人券。"


def _reply_xml(openid: str, account: str) -> str:
    from bot.wechat import render_xml

    return render_xml(
        {"ToUserName": openid, "FromUserName": account, "CreateTime": int(time.time()), "MsgType": "text",
         "Content": FIXED_REPLY}
    )  # fmt: skip


def bare_app() -> Any:
    """The ceiling: the same crypto and XML code as siyu-bot (bot.wechat), nothing stored."""
    from aiohttp import web

    from bot.wechat import CallbackRejected, EnvelopeCrypto, envelope_encrypt, parse_xml

    crypto = EnvelopeCrypto(TOKEN, AES_KEY, APP_ID, work=False)

    async def callback(request: web.Request) -> web.Response:
        q = request.query
        try:
            encrypt = envelope_encrypt(await request.read())
            crypto.check(q["msg_signature"], q["timestamp"], q["nonce"], encrypt)
            fields = parse_xml(crypto.decrypt(encrypt))
        except (CallbackRejected, KeyError):
            return web.Response(status=403, text="rejected")
        xml = _reply_xml(str(fields.get("FromUserName", "")), str(fields.get("ToUserName", "")))
        body = crypto.encrypted_reply(xml, nonce=q["nonce"], timestamp=q["timestamp"])
        return web.Response(text=body, content_type="application/xml")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(PATH, callback)
    app.router.add_get("/healthz", healthz)
    return app


def platform_app() -> Any:
    """Every API call succeeds (token calls get a token): the outbox drains instead of retrying."""
    from aiohttp import web

    answer = {"errcode": 0, "errmsg": "ok", "access_token": "bench-token", "expires_in": 7200}

    async def anything(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(answer)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def siyu_app(db_url: str, port: int, platform_port: int, defer_handlers: bool = False) -> Any:
    from bot.app import SERVICES, build_app
    from bot.config import build_settings, secret_values
    from bot.logs import configure_logging
    from handlers import features

    base = f"http://127.0.0.1:{platform_port}"
    settings = build_settings(
        {
            "server": {"host": "127.0.0.1", "port": port},
            "database": {"url": db_url},
            "content_dir": str(ROOT / "content"),
            "wecom": {
                "corp_id": "wwbench000000001", "agent_id": 1000002, "token": "benchWecomToken",
                "encoding_aes_key": AES_KEY, "secret": "bench-corp-secret", "api_base_url": base,
            },
            "official_account": {
                "app_id": APP_ID, "app_secret": APP_SECRET, "token": TOKEN, "encoding_aes_key": AES_KEY,
                "api_base_url": base,
            },
            "logging": {"level": "WARNING", "format": "text"},
        },
        env={},
    )  # fmt: skip
    if defer_handlers:  # nothing would run what the sweeper re-dispatches: it would only reload them
        inbox = settings.inbox.model_copy(update={"sweep_interval_seconds": 3600})
        settings = settings.model_copy(update={"inbox": inbox})
    configure_logging(settings.logging.level, settings.logging.format, secret_values(settings))
    app = build_app(settings, features())
    if defer_handlers:  # diagnostic: receipts stored and replies planned, no handler transaction runs

        async def skip(receipt_id: int, event: Any, slot: Any = None) -> None:
            if slot is not None:
                slot.deliver(None)

        async def defer(a: Any) -> None:  # after the cleanup contexts: the dispatcher exists
            a[SERVICES].dispatcher.run = skip

        app.on_startup.append(defer)
    return app


def run_werobot(port: int) -> None:
    """WeRoBot's documented deployment: ``robot.run()`` (bottle, server "auto"), session on (its default
    SQLiteStorage in the working directory), handlers returning a string."""
    import werobot

    robot = werobot.WeRoBot(token=TOKEN, encoding_aes_key=AES_KEY, app_id=APP_ID)

    @robot.subscribe  # type: ignore[misc]
    def subscribed(message: Any) -> str:
        return FIXED_REPLY

    @robot.text  # type: ignore[misc]
    def texted(message: Any) -> str:
        return FIXED_REPLY

    robot.config["HOST"], robot.config["PORT"] = "127.0.0.1", port
    robot.run(enable_pretty_logging=False)


def flask_app() -> Any:
    """Flask + wechatpy as in wechatpy's Flask example (for gunicorn)."""
    from flask import Flask, abort, request
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.replies import TextReply
    from wechatpy.utils import check_signature

    app = Flask("oa_bench")
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post(PATH)
    def wechat() -> str:
        a = request.args
        try:
            check_signature(TOKEN, a.get("signature", ""), a.get("timestamp", ""), a.get("nonce", ""))
            xml = crypto.decrypt_message(request.data, a.get("msg_signature"), a.get("timestamp"), a.get("nonce"))
        except InvalidSignatureException:
            abort(403)
        msg = parse_message(xml)
        reply = TextReply(content=FIXED_REPLY, message=msg)
        return str(crypto.encrypt_message(reply.render(), a.get("nonce"), a.get("timestamp")))

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["bare", "app", "werobot", "platform"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-url", default="")
    parser.add_argument("--platform-port", type=int, default=9)
    parser.add_argument("--defer-handlers", action="store_true", help="app: store and reply, run no handler")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.kind == "werobot":
        run_werobot(args.port)
        return 0
    from aiohttp import web

    if args.kind == "bare":
        app = bare_app()
    elif args.kind == "platform":
        app = platform_app()
    else:
        if not args.db_url:
            parser.error("app needs --db-url")
        app = siyu_app(args.db_url, args.port, args.platform_port, args.defer_handlers)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
