"""``siyu-bot demo``: every feature on a simulated WeChat, told as the story of a brand's first days."""

from __future__ import annotations

import argparse
import asyncio

from bot.commands import SubParsers
from bot.feature import Feature

SPEED_HELP = "simulated clock speed for the 48-hour drip (3600: an hour a second; slower speeds jump the waits)"


def cmd_demo(args: argparse.Namespace) -> int:
    from handlers.demo.run import run_demo

    code: int = asyncio.run(run_demo(args.features, speed=args.speed, keep=args.keep))
    return code


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("demo", help="server + simulated WeChat on SQLite, a scripted customer journey")
    d.add_argument("--speed", type=float, default=1.0, help=SPEED_HELP)
    d.add_argument("--keep", action="store_true", help="keep the demo database and print its path")
    d.set_defaults(func=cmd_demo)


DEMO = Feature("demo", commands=(add_commands,))
