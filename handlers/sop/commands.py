"""The SOP feature's commands: ``sop preview`` and ``sop status``."""

from __future__ import annotations

import argparse
import asyncio

from bot.commands import SubParsers, migrated_settings_of


def cmd_sop_preview(args: argparse.Namespace) -> int:
    from handlers.sop.reports import print_preview

    return asyncio.run(print_preview(migrated_settings_of(args), args.days, args.csv, args.limit))


def cmd_sop_status(args: argparse.Namespace) -> int:
    from handlers.sop.status import print_status

    return asyncio.run(print_status(migrated_settings_of(args), args.latest))


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
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
