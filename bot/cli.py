"""``siyu-bot`` command line: serve, migrate, demo, events, stats, content, channels, sop, sim."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings, redact_url, secret_values
from bot.logs import configure_logging

if TYPE_CHECKING:
    from aiohttp import web

WORKERS_HELP = (
    "serving processes (PostgreSQL only; default 1; auto: one per core), run by gunicorn: "
    "pip install 'siyu-bot[workers]'; docs/operations.md"
)
SQLITE_ONE_PROCESS = "error: `serve --workers N` needs PostgreSQL: SQLite has one writer, so one process serves it"
GUNICORN_MISSING = "error: `serve --workers N` needs gunicorn: pip install 'siyu-bot[workers]'"
DEMO_SPEED_HELP = "simulated clock speed for the 48-hour drip (3600: an hour a second; slower speeds jump the waits)"


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config
    if path is None and Path("config.toml").exists():
        path = "config.toml"
    return load_settings(path)


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.db.migrate import upgrade

    settings = _settings(args)
    upgrade(settings.database.url.get())
    print(f"database at head: {redact_url(settings.database.url.get())}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.db.migrate import pending_migrations, upgrade

    settings = _settings(args)
    url = settings.database.url.get()
    workers = args.workers or 1
    if workers > 1 and url.startswith("sqlite"):
        print(SQLITE_ONE_PROCESS, file=sys.stderr)
        return 2
    if workers > 1 and importlib.util.find_spec("gunicorn") is None:
        print(GUNICORN_MISSING, file=sys.stderr)
        return 2
    configure_logging(settings.logging.level, settings.logging.format, secret_values(settings))
    if url.startswith("sqlite"):
        upgrade(url)  # the embedded default migrates itself; PostgreSQL is migrated explicitly
    elif asyncio.run(pending_migrations(url)):
        print("error: database is not at the newest migration; run `siyu-bot migrate` first", file=sys.stderr)
        return 2
    host, port = args.host or settings.server.host, args.port or settings.server.port
    if workers > 1:
        from bot.workers import serve_workers

        return serve_workers(settings, host, port, workers, lambda: _serving_app(settings))

    from bot import serving
    from bot.app import SERVICES

    app = _serving_app(settings)
    serving.run(  # web.run_app's life cycle, with header/body deadlines and a connection cap
        app,
        settings.server,
        host,
        port,
        metrics=app[SERVICES].metrics,
        announce=lambda msg: print(msg, file=sys.stderr),
    )
    return 0


def _serving_app(settings: Settings) -> web.Application:
    """The full app as ``serve`` runs it: SIGHUP reloads the content."""
    from bot.app import SERVICES, build_app

    app = build_app(settings)

    async def reload_on_sighup(a: web.Application) -> None:
        reloader = a[SERVICES].reloader
        if reloader is not None:
            reloader.install_signal()

    app.on_startup.append(reload_on_sighup)
    return app


def _workers(value: str) -> int:
    """``--workers``: a count ≥ 1, or ``auto`` (one per CPU core)."""
    if value == "auto":
        return os.cpu_count() or 1
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return n


def cmd_events(args: argparse.Namespace) -> int:
    from bot.admin_queries import print_recent_events

    settings = _settings(args)
    return asyncio.run(print_recent_events(settings, args.limit, args.status, args.kind))


def cmd_stats_channels(args: argparse.Namespace) -> int:
    from bot.admin_queries import print_channel_stats

    return asyncio.run(print_channel_stats(_settings(args), args.since, args.until, args.csv))


def cmd_lottery(args: argparse.Namespace) -> int:
    from handlers.lottery_admin import kill_command, status_command, verify_command

    settings = _settings(args)
    if args.lottery_command == "status":
        return asyncio.run(status_command(settings, sys.stdout))
    if args.lottery_command == "verify":
        return asyncio.run(verify_command(settings, args.campaign, sys.stdout))
    resume = args.lottery_command == "resume"
    reason = getattr(args, "reason", "") or ""
    return asyncio.run(kill_command(settings, args.campaign, reason, sys.stdout, resume=resume))


def _add_lottery(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lo = sub.add_parser("lottery", help="lottery campaigns: status (publishes seed hashes), kill switch, verify")
    losub = lo.add_subparsers(dest="lottery_command", required=True)
    losub.add_parser("status", help="campaigns, published seed hashes, draws, stock").set_defaults(func=cmd_lottery)
    kill = losub.add_parser("kill", help="stop a campaign's draws at once")
    kill.add_argument("campaign")
    kill.add_argument("--reason", required=True)
    kill.set_defaults(func=cmd_lottery)
    resume = losub.add_parser("resume", help="lift the kill switch")
    resume.add_argument("campaign")
    resume.set_defaults(func=cmd_lottery)
    verify = losub.add_parser("verify", help="after the end: reveal the seed and recompute every draw")
    verify.add_argument("campaign")
    verify.set_defaults(func=cmd_lottery)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    code: int = asyncio.run(run_demo(speed=args.speed, keep=args.keep))
    return code


def cmd_sop_preview(args: argparse.Namespace) -> int:
    from bot.sop_reports import print_preview

    return asyncio.run(print_preview(_settings(args), args.days, args.csv, args.limit))


def cmd_sop_status(args: argparse.Namespace) -> int:
    from bot.sop_status import print_status

    return asyncio.run(print_status(_settings(args), args.latest))


def cmd_sim_advance(args: argparse.Namespace) -> int:
    from bot.sim_clock import advance_command

    return advance_command(args.url, args.seconds, sys.stdout)


def cmd_content_check(args: argparse.Namespace) -> int:
    from bot.content import check_command

    return check_command(args.dir or _content_dir(args), tz=_tz(args))


def cmd_content_sync(args: argparse.Namespace) -> int:
    from bot.sync import sync_command

    settings = _settings(args)
    configure_logging(settings.logging.level, "text", secret_values(settings))
    return asyncio.run(sync_command(settings, args.dry_run, sys.stdout))


def cmd_channels_qr(args: argparse.Namespace) -> int:
    from bot.sync import qr_command

    return asyncio.run(qr_command(_settings(args), args.code, args.output or f"{args.code}.png"))


def _tz(args: argparse.Namespace) -> zoneinfo.ZoneInfo:
    try:
        return _settings(args).tz
    except ConfigError:
        return zoneinfo.ZoneInfo("Asia/Shanghai")


def _content_dir(args: argparse.Namespace) -> str:
    try:
        return _settings(args).content_dir
    except ConfigError:
        return "content"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siyu-bot", description=__doc__)
    p.add_argument("-c", "--config", default=os.environ.get("SIYU_CONFIG"), help="TOML config (default ./config.toml)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the callback server")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=_workers, metavar="N", help=WORKERS_HELP)
    s.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="upgrade the database to the newest migration").set_defaults(func=cmd_migrate)
    e = sub.add_parser("events", help="recent callbacks with their status")
    e.add_argument("--limit", type=int, default=20)
    e.add_argument("--status", choices=["pending", "done", "failed"])
    e.add_argument("--kind")
    e.set_defaults(func=cmd_events)
    st = sub.add_parser("stats", help="reports")
    stsub = st.add_subparsers(dest="stats_command", required=True)
    stc = stsub.add_parser("channels", help="per channel: adds, unique, losses, net, welcomes, A/B, 7-day retention")
    stc.add_argument("--since", help="first local day (YYYY-MM-DD, configured timezone)")
    stc.add_argument("--until", help="day after the last (YYYY-MM-DD)")
    stc.add_argument("--csv", action="store_true")
    stc.set_defaults(func=cmd_stats_channels)
    _add_sop_and_sim(sub)
    _add_lottery(sub)
    c = sub.add_parser("content", help="operator content in content/")
    csub = c.add_subparsers(dest="content_command", required=True)
    chk = csub.add_parser("check", help="validate content files (file, key, reason)")
    chk.add_argument("dir", nargs="?")
    chk.set_defaults(func=cmd_content_check)
    syn = csub.add_parser("sync", help="make WeCom and the Official Account match content/ (idempotent)")
    syn.add_argument("--dry-run", action="store_true", help="print the plan, call nothing")
    syn.set_defaults(func=cmd_content_sync)
    ch = sub.add_parser("channels", help="channel codes")
    chsub = ch.add_subparsers(dest="channels_command", required=True)
    qr = chsub.add_parser("qr", help="write a channel's QR code as PNG (for print: package cards, posters)")
    qr.add_argument("code")
    qr.add_argument("-o", "--output", help="PNG path (default CODE.png)")
    qr.set_defaults(func=cmd_channels_qr)
    return p


def _add_sop_and_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``sop preview|status``, and the simulator side: ``demo`` and ``sim advance``."""
    d = sub.add_parser("demo", help="server + simulated WeChat on SQLite, a scripted customer journey")
    d.add_argument("--speed", type=float, default=1.0, help=DEMO_SPEED_HELP)
    d.add_argument("--keep", action="store_true", help="keep the demo database and print its path")
    d.set_defaults(func=cmd_demo)
    sop = sub.add_parser("sop", help="the SOP engine: drips and group posts")
    sopsub = sop.add_subparsers(dest="sop_command", required=True)
    pv = sopsub.add_parser("preview", help="what would go to whom in the next days, and what the budget would stop")
    pv.add_argument("--days", type=int, default=7)
    pv.add_argument("--csv", action="store_true")
    pv.add_argument("--limit", type=int, default=1000, help="at most this many drip steps")
    pv.set_defaults(func=cmd_sop_preview)
    ss = sopsub.add_parser("status", help="running drips, pending/deferred/skipped steps, group fires, with reasons")
    ss.add_argument("--latest", type=int, default=10, help="how many recent rows per section")
    ss.set_defaults(func=cmd_sop_status)
    sim = sub.add_parser("sim", help="simulation only: the clock of a demo server (loopback URLs only)")
    simsub = sim.add_subparsers(dest="sim_command", required=True)
    adv = simsub.add_parser("advance", help="move the simulated clock of a demo/rig server ahead")
    adv.add_argument("--seconds", type=float, required=True)
    adv.add_argument("--url", default="http://127.0.0.1:8080", help="the demo server (printed by `siyu-bot demo`)")
    adv.set_defaults(func=cmd_sim_advance)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
