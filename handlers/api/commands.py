"""``siyu-bot api-keys create|list|revoke``: the admin API's keys (docs/api.md#authentication)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from bot.commands import SubParsers, settings_of
from bot.config import Settings
from bot.db.engine import make_engine, sessionmaker
from handlers.api.keys import SCOPES, KeyError_, create_key, list_keys, revoke_key


async def _create(settings: Settings, name: str, scope: str) -> int:
    engine = make_engine(settings.database)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            key = await create_key(session, name, scope, datetime.now(UTC))
    except KeyError_ as exc:
        print(f"error: {exc}")
        return 1
    finally:
        await engine.dispose()
    print(f"created API key {name!r} with scope {scope}. It is shown this once; keep it secret:")
    print(key)
    return 0


async def _list(settings: Settings) -> int:
    engine = make_engine(settings.database)
    try:
        async with sessionmaker(engine)() as session:
            rows = await list_keys(session)
    finally:
        await engine.dispose()
    tz = settings.tz

    def when(at: datetime | None) -> str:
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else "-"

    print(f"{'id':>4}  {'name':<24}{'scope':<7}{'created':<18}{'last used':<18}revoked")
    for r in rows:
        print(
            f"{r.id:>4}  {r.name:<24}{r.scope:<7}{when(r.created_at):<18}{when(r.last_used_at):<18}{when(r.revoked_at)}"
        )
    if not rows:
        print("(no API keys)")
    return 0


async def _revoke(settings: Settings, name_or_id: str) -> int:
    engine = make_engine(settings.database)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            row = await revoke_key(session, name_or_id, datetime.now(UTC))
            name = row.name
    except KeyError_ as exc:
        print(f"error: {exc}")
        return 1
    finally:
        await engine.dispose()
    print(f"revoked API key {name!r}")
    return 0


def cmd_api_keys(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.api_keys_command == "create":
        return asyncio.run(_create(settings, args.name, args.scope))
    if args.api_keys_command == "revoke":
        return asyncio.run(_revoke(settings, args.key))
    return asyncio.run(_list(settings))


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("api-keys", help="keys of the admin API (/api/v1/)")
    ksub = keys.add_subparsers(dest="api_keys_command", required=True)
    create = ksub.add_parser("create", help="make a key and print it once")
    create.add_argument("name", help="who or what uses it (shown in the audit log)")
    create.add_argument("--scope", choices=SCOPES, default="read", help="read < write < admin (default read)")
    ksub.add_parser("list", help="name, scope, created, last used, revoked (never the key)")
    revoke = ksub.add_parser("revoke", help="refuse a key from now on")
    revoke.add_argument("key", metavar="NAME|ID")
    keys.set_defaults(func=cmd_api_keys)
