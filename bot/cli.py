"""``siyu-bot`` command line: the kernel's commands (serve, migrate, events, content check, sim) and every
feature's own (``Feature.commands``: stats, channels, content sync, sop, lottery, demo)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.commands import NotMigrated, content_dir_of, ensure_migrated, migrated_settings_of, settings_of, tz_of
from bot.config import ConfigError, Settings, redact_url, secret_values
from bot.content_commands import add_revision_commands
from bot.feature import Feature
from bot.logs import configure_logging

if TYPE_CHECKING:
    from aiohttp import web

    from bot.rehearsal import FollowedClock

WORKERS_HELP = (
    "serving processes (PostgreSQL only; default 1; auto: one per core), run by gunicorn: "
    "pip install 'siyu-bot[workers]'; docs/operations.md"
)
SQLITE_ONE_PROCESS = "error: `serve --workers N` needs PostgreSQL: SQLite has one writer, so one process serves it"
GUNICORN_MISSING = "error: `serve --workers N` needs gunicorn: pip install 'siyu-bot[workers]'"


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.db.migrate import upgrade

    settings = settings_of(args)
    upgrade(settings.database.url.get())
    print(f"database at head: {redact_url(settings.database.url.get())}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    url = settings.database.url.get()
    workers = args.workers or 1
    if workers > 1 and url.startswith("sqlite"):
        print(SQLITE_ONE_PROCESS, file=sys.stderr)
        return 2
    if workers > 1 and importlib.util.find_spec("gunicorn") is None:
        print(GUNICORN_MISSING, file=sys.stderr)
        return 2
    clock = None
    if args.rehearse:
        from bot.rehearsal import FollowedClock

        if workers > 1:
            print("error: `serve --rehearse` runs one process", file=sys.stderr)
            return 2
        clock = FollowedClock.connect(settings)  # refused (exit 2) unless every platform URL is loopback
        print(f"rehearsal: following the simulator's clock at {clock.url} ({clock.speed:g}×)", file=sys.stderr)
    configure_logging(settings.logging.level, settings.logging.format, secret_values(settings))
    ensure_migrated(settings)  # the embedded SQLite default migrates itself; PostgreSQL is migrated explicitly
    host, port = args.host or settings.server.host, args.port or settings.server.port
    if workers > 1:
        from bot.workers import serve_workers

        return serve_workers(settings, host, port, workers, lambda: _serving_app(settings, args.features))

    from bot import serving
    from bot.app import SERVICES

    app = _serving_app(settings, args.features, clock)
    serving.run(  # web.run_app's life cycle, with header/body deadlines and a connection cap
        app,
        settings.server,
        host,
        port,
        metrics=app[SERVICES].metrics,
        announce=lambda msg: print(msg, file=sys.stderr),
    )
    return 0


def _serving_app(
    settings: Settings, features: Sequence[Feature], clock: FollowedClock | None = None
) -> web.Application:
    """The full app as ``serve`` runs it: SIGHUP reloads the content; when rehearsing, on the simulator's clock."""
    from bot.app import SERVICES, build_app

    app = build_app(settings, features, clock=clock)
    if clock is not None:
        followed = clock
        app.cleanup_ctx.append(lambda a: followed.follow(a[SERVICES].wake))

    async def reload_on_sighup(a: web.Application) -> None:
        a[SERVICES].reloader.install_signal()

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
    from bot.receipts_report import print_recent_events

    settings = migrated_settings_of(args)
    return asyncio.run(print_recent_events(settings, args.limit, args.status, args.kind))


def cmd_sim_advance(args: argparse.Namespace) -> int:
    from bot.sim_clock import advance_command

    return advance_command(args.url, args.seconds, sys.stdout)


def cmd_content_check(args: argparse.Namespace) -> int:
    from bot.content import check_command
    from bot.feature import content_registry_of

    features: list[Feature] = args.features
    reports = [report for f in features for report in f.content_reports]
    directory = args.dir or content_dir_of(args)
    return check_command(directory, content_registry_of(features), reports=reports, tz=tz_of(args))


def build_parser(features: Sequence[Feature]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siyu-bot", description=__doc__)
    p.add_argument("-c", "--config", default=os.environ.get("SIYU_CONFIG"), help="TOML config (default ./config.toml)")
    p.set_defaults(features=list(features))
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the callback server")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=_workers, metavar="N", help=WORKERS_HELP)
    s.add_argument(
        "--rehearse",
        action="store_true",
        help="run on the local simulator's clock (python -m bot.simulator --speed N; siyu-bot sim advance); "
        "refused unless every platform URL is loopback",
    )
    s.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="upgrade the database to the newest migration").set_defaults(func=cmd_migrate)
    e = sub.add_parser("events", help="recent callbacks with their status")
    e.add_argument("--limit", type=int, default=20)
    e.add_argument("--status", choices=["pending", "done", "failed"])
    e.add_argument("--kind")
    e.set_defaults(func=cmd_events)
    c = sub.add_parser("content", help="operator content in content/")
    csub = c.add_subparsers(dest="content_command", required=True)
    chk = csub.add_parser("check", help="validate content files (file, key, reason)")
    chk.add_argument("dir", nargs="?")
    chk.set_defaults(func=cmd_content_check)
    add_revision_commands(csub)
    sim = sub.add_parser("sim", help="simulation only: the clock of a demo server (loopback URLs only)")
    simsub = sim.add_subparsers(dest="sim_command", required=True)
    adv = simsub.add_parser("advance", help="move the simulated clock of a demo/rig server ahead")
    adv.add_argument("--seconds", type=float, required=True)
    adv.add_argument(
        "--url", default="http://127.0.0.1:8080",
        help="the demo server (printed by `siyu-bot demo`), or the simulator a `serve --rehearse` follows",
    )  # fmt: skip
    adv.set_defaults(func=cmd_sim_advance)
    for feature in features:
        for add in feature.commands:
            add(sub)
    return p


def main(argv: Sequence[str] | None, features: Sequence[Feature]) -> int:
    args = build_parser(features).parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, NotMigrated) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
