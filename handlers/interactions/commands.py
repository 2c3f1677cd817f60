"""The interactions' commands: ``lottery status|kill|resume|verify``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.commands import SubParsers, migrated_settings_of


def cmd_lottery(args: argparse.Namespace) -> int:
    from handlers.interactions.lottery.admin import kill_command, status_command, verify_command

    settings = migrated_settings_of(args)
    if args.lottery_command == "status":
        return asyncio.run(status_command(settings, sys.stdout))
    if args.lottery_command == "verify":
        return asyncio.run(verify_command(settings, args.campaign, sys.stdout))
    resume = args.lottery_command == "resume"
    reason = getattr(args, "reason", "") or ""
    return asyncio.run(kill_command(settings, args.campaign, reason, sys.stdout, resume=resume))


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
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
