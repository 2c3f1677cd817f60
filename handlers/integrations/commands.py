"""``siyu-bot webhooks add|list|disable|enable|remove|deliveries|replay``: outbound webhook endpoints."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SystemClock
from bot.commands import SubParsers, in_transaction, settings_of

T = TypeVar("T")


def _run(args: argparse.Namespace, fn: Callable[[AsyncSession], Awaitable[int]]) -> int:
    from handlers.integrations.endpoints import EndpointError

    try:
        return asyncio.run(in_transaction(settings_of(args), fn))
    except EndpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_add(args: argparse.Namespace) -> int:
    from handlers.integrations.endpoints import add_endpoint

    allow = settings_of(args).webhooks.allow_private_targets

    async def add(session: AsyncSession) -> int:
        made = await add_endpoint(
            session, args.url, args.events, ordered=args.ordered, allow_private=allow, now=SystemClock().now()
        )
        print(f"endpoint {made.id} added")
        # printed once, to the operator's terminal (never logged): the receiver verifies with it
        print(f"secret: {made.secret}")
        print("keep the secret now: it is not shown again")
        return 0

    return _run(args, add)


def cmd_list(args: argparse.Namespace) -> int:
    from handlers.integrations.endpoints import list_endpoints

    async def show(session: AsyncSession) -> int:
        rows = await list_endpoints(session)
        if not rows:
            print("no webhook endpoints (siyu-bot webhooks add URL --events …)")
        for row, counts in rows:
            state = "enabled" if row.enabled else f"disabled ({row.disabled_reason or 'no reason'})"
            flags = " ordered" if row.ordered else ""
            failing = f" failing since {row.failing_since.isoformat()}" if row.failing_since else ""
            tally = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no deliveries"
            print(f"{row.id}\t{row.url}\t{','.join(row.events)}\t{state}{flags}{failing}\t{tally}")
        return 0

    return _run(args, show)


def cmd_enable(args: argparse.Namespace, enabled: bool) -> int:
    from handlers.integrations.endpoints import set_enabled

    async def flip(session: AsyncSession) -> int:
        await set_enabled(session, args.id, enabled, SystemClock().now())
        print(f"endpoint {args.id} {'enabled' if enabled else 'disabled'}")
        return 0

    return _run(args, flip)


def cmd_remove(args: argparse.Namespace) -> int:
    from handlers.integrations.endpoints import remove_endpoint

    async def remove(session: AsyncSession) -> int:
        gone = await remove_endpoint(session, args.id)
        print(f"endpoint {args.id} removed with {gone} deliveries")
        return 0

    return _run(args, remove)


def cmd_deliveries(args: argparse.Namespace) -> int:
    from handlers.integrations.endpoints import recent_deliveries
    from handlers.integrations.tables import msg_id

    async def show(session: AsyncSession) -> int:
        for row, last in await recent_deliveries(session, args.endpoint, args.limit):
            answer = "-"
            if last is not None:
                answer = f"HTTP {last.status_code}" if last.status_code is not None else (last.error or "-")
                answer += f" in {last.latency_ms} ms"
            when = row.delivered_at or row.next_attempt_at
            print(
                f"{row.id}\t{msg_id(row.id)}\t{row.event_type}\t{row.state}\tattempts {row.attempts}\t"
                f"{answer}\t{'delivered' if row.delivered_at else 'next'} {when.isoformat()}"
            )
        return 0

    return _run(args, show)


def cmd_replay(args: argparse.Namespace) -> int:
    from handlers.integrations.endpoints import replay

    async def again(session: AsyncSession) -> int:
        row = await replay(session, args.delivery, SystemClock().now())
        print(f"delivery {row.id} queued again (webhook-id msg_{row.id})")
        return 0

    return _run(args, again)


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("webhooks", help="outbound webhooks: endpoints that receive every domain event, signed")
    wsub = w.add_subparsers(dest="webhooks_command", required=True)
    add = wsub.add_parser("add", help="add an endpoint; prints its id and signing secret (once)")
    add.add_argument("url")
    add.add_argument(
        "--events", required=True, help="comma-separated names (customer.created,order.recorded), customer.*, or *"
    )
    add.add_argument("--ordered", action="store_true", help="one customer's events one at a time, in order")
    add.set_defaults(func=cmd_add)
    wsub.add_parser("list", help="endpoints, their state and delivery counts").set_defaults(func=cmd_list)
    for name, enabled, what in (
        ("disable", False, "stop delivering (deliveries wait)"),
        ("enable", True, "deliver again, waiting deliveries at once"),
    ):
        p = wsub.add_parser(name, help=what)
        p.add_argument("id", type=int)
        p.set_defaults(func=lambda a, e=enabled: cmd_enable(a, e))
    rm = wsub.add_parser("remove", help="delete an endpoint with its deliveries")
    rm.add_argument("id", type=int)
    rm.set_defaults(func=cmd_remove)
    d = wsub.add_parser("deliveries", help="an endpoint's newest deliveries with their last attempt")
    d.add_argument("endpoint", type=int)
    d.add_argument("--limit", type=int, default=20)
    d.set_defaults(func=cmd_deliveries)
    r = wsub.add_parser("replay", help="send a delivery again now (same webhook-id)")
    r.add_argument("delivery", type=int)
    r.set_defaults(func=cmd_replay)
