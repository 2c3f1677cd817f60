"""What every ``siyu-bot`` command shares: reading the configuration named on the command line, and a
database that is ready to read.

Features add their own subcommands (``Feature.commands``); they read settings through
:func:`settings_of` so ``-c/--config``, ``SIYU_CONFIG`` and ``./config.toml`` mean the same everywhere.
A command that reads the database uses :func:`migrated_settings_of` instead: the embedded SQLite
database migrates itself (as ``serve`` does); PostgreSQL behind the newest migration stops the command
with one line saying what to run (:class:`NotMigrated`, printed by ``bot.cli.main``).
"""

from __future__ import annotations

import argparse
import asyncio
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import ConfigError, Settings, load_settings
from bot.content.registry import Registry

SubParsers = argparse._SubParsersAction  # the type ``add_subparsers`` returns
NOT_MIGRATED = "the database is not migrated: run siyu-bot migrate"


class NotMigrated(Exception):
    """The configured PostgreSQL database is behind the newest migration."""

    def __init__(self) -> None:
        super().__init__(NOT_MIGRATED)


T = TypeVar("T")


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


def ensure_migrated(settings: Settings) -> None:
    """SQLite (the embedded default) is upgraded in place; PostgreSQL is migrated explicitly by its
    operator, so a database behind the newest migration raises :class:`NotMigrated`.

    Call before the command's event loop starts: alembic's env.py runs one of its own.
    """
    from bot.db.migrate import pending_migrations, upgrade

    url = settings.database.url.get()
    if url.startswith("sqlite"):
        upgrade(url)
    elif asyncio.run(pending_migrations(url)):
        raise NotMigrated


def migrated_settings_of(args: argparse.Namespace) -> Settings:
    """:func:`settings_of` for a command that reads the database: :func:`ensure_migrated` first."""
    settings = settings_of(args)
    ensure_migrated(settings)
    return settings


def content_registry_from(args: argparse.Namespace) -> Registry:
    """Every content kind of the features the command line was built with (``args.features``)."""
    from bot.feature import content_registry_of

    return content_registry_of(args.features)


async def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``work(session)`` in one transaction on an engine of its own, disposed after (a command owns it)."""
    from bot.db.engine import make_engine, sessionmaker

    engine = make_engine(settings.database)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()
