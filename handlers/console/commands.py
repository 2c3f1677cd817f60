"""``siyu-bot users add|list|disable|reset-password``: who may sign in to the console (docs/console.md)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.commands import SubParsers, in_transaction, settings_of
from bot.config import Settings
from handlers.console.users import ROLES, UserError, add_user, disable_user, list_users, reset_password

T = TypeVar("T")


def read_password() -> str:
    """From the terminal without echo (twice), or the first line of stdin when it is piped."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UserError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _run(settings: Settings, fn: Callable[[AsyncSession], Awaitable[str]]) -> int:
    try:
        print(asyncio.run(in_transaction(settings, fn)))
    except UserError as exc:
        print(f"error: {exc}")
        return 1
    return 0


def _listing(tz: object) -> Callable[[AsyncSession], Awaitable[str]]:
    async def show(session: AsyncSession) -> str:
        rows = await list_users(session)
        lines = [f"{'id':>4}  {'email':<32}{'role':<10}{'created':<18}{'last sign-in':<18}disabled"]
        for u in rows:
            lines.append(
                f"{u.id:>4}  {u.email:<32}{u.role:<10}{_when(u.created_at, tz):<18}"
                f"{_when(u.last_login_at, tz):<18}{_when(u.disabled_at, tz)}"
            )
        return "\n".join(lines if rows else [*lines, "(no users)"])

    return show


def _when(at: datetime | None, tz: object) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else "-"  # type: ignore[arg-type]


def cmd_users(args: argparse.Namespace) -> int:
    settings, now, command = settings_of(args), datetime.now(UTC), args.users_command
    if command == "list":
        return _run(settings, _listing(settings.tz))
    if command == "disable":

        async def disable(session: AsyncSession) -> str:
            user = await disable_user(session, args.email, now)
            return f"disabled {user.email}; their sessions are ended"

        return _run(settings, disable)
    try:
        password = read_password()
    except UserError as exc:
        print(f"error: {exc}")
        return 1
    if command == "add":

        async def add(session: AsyncSession) -> str:
            user = await add_user(session, args.email, args.role, password, now)
            return f"added {user.email} as {user.role}"

        return _run(settings, add)

    async def reset(session: AsyncSession) -> str:
        user = await reset_password(session, args.email, password)
        return f"new password set for {user.email}; their sessions are ended"

    return _run(settings, reset)


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="who may sign in to the console (/console/)")
    usub = users.add_subparsers(dest="users_command", required=True)
    add = usub.add_parser("add", help="add a user; the password is read from stdin")
    add.add_argument("email")
    add.add_argument("--role", choices=ROLES, required=True, help="viewer < operator < admin < owner")
    usub.add_parser("list", help="email, role, created, last sign-in, disabled (never the password)")
    disable = usub.add_parser("disable", help="refuse sign-in from now on (ends their sessions)")
    disable.add_argument("email")
    reset = usub.add_parser("reset-password", help="a new password from stdin (ends their sessions)")
    reset.add_argument("email")
    users.set_defaults(func=cmd_users)
