"""The growth feature's commands: ``stats channels``, ``content sync``, ``channels qr``, ``import``,
``reconcile``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime, time

from bot.commands import SubParsers, migrated_settings_of
from bot.config import Settings, secret_values
from bot.db.engine import make_engine, sessionmaker
from bot.logs import configure_logging
from handlers.content import live_content
from handlers.growth.content import channels_of
from handlers.growth.stats import UNATTRIBUTED, as_rows, channel_stats, render_csv, render_table


async def print_channel_stats(settings: Settings, since: str | None, until: str | None, as_csv: bool) -> int:
    """``siyu-bot stats channels``: dates are local days in the configured timezone."""

    def start_of(day: str | None) -> datetime | None:
        if day is None:
            return None
        return datetime.combine(date.fromisoformat(day), time(0), settings.tz)

    content = await live_content(settings)
    names = {c.code: c.name for c in channels_of(content).channels}
    names[UNATTRIBUTED] = "未归因"
    engine = make_engine(settings.database)
    try:
        async with sessionmaker(engine)() as session:
            stats = await channel_stats(session, datetime.now(UTC), start_of(since), start_of(until))
    finally:
        await engine.dispose()
    rows = as_rows(stats, names)
    print(render_csv(rows) if as_csv else (render_table(rows) if rows else "(no arrivals yet)"), end="\n")
    return 0


def cmd_stats_channels(args: argparse.Namespace) -> int:
    return asyncio.run(print_channel_stats(migrated_settings_of(args), args.since, args.until, args.csv))


def cmd_content_sync(args: argparse.Namespace) -> int:
    from handlers.growth.sync import sync_command

    settings = migrated_settings_of(args)
    configure_logging(settings.logging.level, "text", secret_values(settings))
    return asyncio.run(sync_command(settings, args.dry_run, sys.stdout))


def cmd_channels_qr(args: argparse.Namespace) -> int:
    from handlers.growth.sync import qr_command

    return asyncio.run(qr_command(migrated_settings_of(args), args.code, args.output or f"{args.code}.png"))


def cmd_import(args: argparse.Namespace) -> int:
    from handlers.growth.importer import import_command

    settings = migrated_settings_of(args)
    return asyncio.run(import_command(settings, sys.stdout))


def cmd_reconcile(args: argparse.Namespace) -> int:
    from handlers.growth.reconcile_runs import history_command, reconcile_command

    settings = migrated_settings_of(args)
    if args.history:
        return asyncio.run(history_command(settings, args.limit, sys.stdout))
    configure_logging(settings.logging.level, "text", secret_values(settings))
    return asyncio.run(reconcile_command(settings, args.features, sys.stdout))


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
    imp = sub.add_parser(
        "import",
        help="read an existing account's customers, groups, tags and followers (resumable; never welcomes)",
    )
    imp.set_defaults(func=cmd_import)
    rec = sub.add_parser(
        "reconcile",
        help="record what the platform knows that no callback told us (new, lost, group members, tags, followers)",
    )
    rec.add_argument("--history", action="store_true", help="list the latest runs instead")
    rec.add_argument("--limit", type=int, default=20, help="how many runs --history lists")
    rec.set_defaults(func=cmd_reconcile)
    st = sub.choices.get("stats") or sub.add_parser("stats", help="reports")
    stsub = st.add_subparsers(dest="stats_command", required=True)
    stc = stsub.add_parser("channels", help="per channel: adds, unique, losses, net, welcomes, A/B, 7-day retention")
    stc.add_argument("--since", help="first local day (YYYY-MM-DD, configured timezone)")
    stc.add_argument("--until", help="day after the last (YYYY-MM-DD)")
    stc.add_argument("--csv", action="store_true")
    stc.set_defaults(func=cmd_stats_channels)
    content = sub.choices["content"]  # the kernel's ``content`` command (check) gains ``sync``
    csub = next(a for a in content._actions if isinstance(a, argparse._SubParsersAction))
    syn = csub.add_parser("sync", help="make WeCom and the Official Account match content/ (idempotent)")
    syn.add_argument("--dry-run", action="store_true", help="print the plan, call nothing")
    syn.set_defaults(func=cmd_content_sync)
    ch = sub.add_parser("channels", help="channel codes")
    chsub = ch.add_subparsers(dest="channels_command", required=True)
    qr = chsub.add_parser("qr", help="write a channel's QR code as PNG (for print: package cards, posters)")
    qr.add_argument("code")
    qr.add_argument("-o", "--output", help="PNG path (default CODE.png)")
    qr.set_defaults(func=cmd_channels_qr)
