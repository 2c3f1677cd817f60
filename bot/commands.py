"""What every ``siyu-bot`` command shares: reading the configuration named on the command line.

Features add their own subcommands (``Feature.commands``); they read settings through
:func:`settings_of` so ``-c/--config``, ``SIYU_CONFIG`` and ``./config.toml`` mean the same everywhere.
"""

from __future__ import annotations

import argparse
import zoneinfo
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings

SubParsers = argparse._SubParsersAction  # the type ``add_subparsers`` returns


def settings_of(args: argparse.Namespace) -> Settings:
    path = args.config
    if path is None and Path("config.toml").exists():
        path = "config.toml"
    return load_settings(path)


def tz_of(args: argparse.Namespace) -> zoneinfo.ZoneInfo:
    """The configured timezone, or Asia/Shanghai when there is no usable configuration (``content check``)."""
    try:
        return settings_of(args).tz
    except ConfigError:
        return zoneinfo.ZoneInfo("Asia/Shanghai")


def content_dir_of(args: argparse.Namespace) -> str:
    try:
        return settings_of(args).content_dir
    except ConfigError:
        return "content"
