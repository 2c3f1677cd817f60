"""``siyu-bot staff …``: departed, transfer (离职继承), handover (在职转接), transfers, audit, directory.

The commands read the platform directly (who left, whose customers, who is active), decide, and then —
unless ``--dry-run`` — store the rows and queue the transfer calls in one transaction; the running
``serve`` sends them through its outbox and tracks every customer to a final state
(:mod:`handlers.staff.transfers`). Bad input is refused in one line and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock, SystemClock
from bot.commands import SubParsers, migrated_settings_of
from bot.config import Settings
from bot.context import Context
from bot.platform import PlatformError, WeComClient
from handlers.staff import platform_reads as reads
from handlers.staff.directory import departments, remember
from handlers.staff.queries import audit_trail, group_counts, pending_transfers, transfer_counts
from handlers.staff.successors import Rule, TransferInputError, assign, candidates, parse_rule
from handlers.staff.tables import StaffAudit, StaffTransfer
from handlers.staff.transfers import request_customers, request_groups

T = TypeVar("T")
SUCCESS_MSG_MAX = 200  # transfer_success_msg (docs/platform.md#staff-transfers)


@dataclass
class Tools:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    wecom: WeComClient
    out: TextIO

    async def tx(self, fn: Callable[[Context], Awaitable[T]]) -> T:
        async with self.sessions() as session, session.begin():
            ctx = Context(session, self.settings, self.clock, random.Random(), None, None, scope="staff-command")
            return await fn(ctx)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


async def run_with(settings: Settings, out: TextIO, clock: Clock | None, fn: Callable[[Tools], Awaitable[int]]) -> int:
    """``fn`` with a database and a WeCom client: 2 on bad input, 1 when the platform refused a read."""
    import aiohttp

    from bot.db.engine import make_engine, sessionmaker
    from bot.platform import DbTokenStore

    if not (settings.wecom.corp_id and settings.wecom.secret):
        print("error: [wecom] corp_id/secret is not set", file=out)
        return 2
    clock = clock or SystemClock()
    engine = make_engine(settings.database)
    try:
        sessions = sessionmaker(engine)
        async with aiohttp.ClientSession() as http:
            wecom = WeComClient(http, settings.wecom, DbTokenStore(sessions, clock), clock)
            try:
                return await fn(Tools(settings, sessions, clock, wecom, out))
            except TransferInputError as exc:
                print(f"error: {exc}", file=out)
                return 2
            except PlatformError as exc:
                print(f"error: the platform refused: {exc}", file=out)
                return 1
    finally:
        await engine.dispose()


# --- departed ------------------------------------------------------------------------------------


async def departed(t: Tools) -> int:
    listed = await reads.unassigned(t.wecom)
    per = Counter(u.handover_userid for u in listed)
    if not per:
        t.say("no departed member has unassigned customers")
        return 0
    left = {u.handover_userid: u.dimission_time for u in listed}
    t.say(f"{'member':<24} {'left':<20} {'customers':>9} {'groups':>6}")
    for userid, n in sorted(per.items()):
        groups = len(await reads.groups_of(t.wecom, userid))
        at = left[userid]
        when = at.astimezone(t.settings.tz).strftime("%Y-%m-%d %H:%M") if at is not None else "?"
        t.say(f"{userid:<24} {when:<20} {n:>9} {groups:>6}")
    return 0


def remembering(user: dict[str, Any]) -> Callable[[Context], Awaitable[None]]:
    return lambda ctx: remember(ctx, user)


# --- transfer (离职继承) ----------------------------------------------------------------------------


async def successors(t: Tools, rule: Rule, old: str, active: list[str]) -> tuple[str, ...]:
    known = await t.tx(departments)
    if rule.kind == "same-department":
        for userid in active:
            user = await reads.member(t.wecom, userid)
            known[userid] = [d for d in user.get("department") or [] if isinstance(d, int)]
            await t.tx(remembering(user))
    return candidates(rule, old, active, known)


async def transfer(t: Tools, old: str, rule: Rule, with_groups: bool, dry_run: bool) -> int:
    active = await reads.active_members(t.wecom)
    if old in active:
        raise TransferInputError(f"{old} has not left (still a member with customers): use `staff handover`")
    customers = [u.external_userid for u in await reads.unassigned(t.wecom) if u.handover_userid == old]
    chats = await reads.groups_of(t.wecom, old) if with_groups else []
    if not customers and not chats:
        raise TransferInputError(f"no unassigned customers or groups of {old} (unknown member, or handed over)")
    names = await successors(t, rule, old, active)
    plan, group_plan = assign(customers, names), assign(chats, names)
    show_plan(t, "transfer", old, plan, group_plan, dry_run)
    if dry_run:
        return 0
    batch = await t.tx(lambda ctx: record(ctx, "transfer", "resigned", old, rule.label, plan, group_plan, None))
    t.say(f"requested as {batch}: the running server sends it; follow it with `siyu-bot staff transfers`")
    return 0


def show_plan(t: Tools, what: str, old: str, plan: dict[str, str], groups: dict[str, str], dry_run: bool) -> None:
    t.say(f"{'plan (dry run, nothing changed)' if dry_run else 'plan'}: {what} from {old}")
    counts, group_counts = Counter(plan.values()), Counter(groups.values())
    for new in sorted(set(counts) | set(group_counts)):
        t.say(f"  → {new}: {counts[new]} customers, {group_counts[new]} groups")


async def record(
    ctx: Context, command: str, kind: str, old: str, rule: str, plan: dict[str, str], groups: dict[str, str],
    message: str | None,
) -> str:  # fmt: skip
    batch = f"{command[:1]}{ctx.now():%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    summary = {new: {"customers": sum(1 for v in plan.values() if v == new),
                     "groups": sum(1 for v in groups.values() if v == new)}
               for new in sorted(set(plan.values()) | set(groups.values()))}  # fmt: skip
    ctx.session.add(StaffAudit(batch=batch, command=command, from_userid=old, rule=rule, customers=len(plan),
                               groups=len(groups), plan=summary, at=ctx.now()))  # fmt: skip
    if plan:
        await request_customers(ctx, batch, kind, old, plan, message)
    if groups:
        await request_groups(ctx, batch, kind, old, groups)
    return batch


# --- handover (在职转接) ----------------------------------------------------------------------------


async def handover(
    t: Tools, old: str, new: str, message: str, chosen: list[str], with_groups: bool, dry_run: bool
) -> int:
    if not message.strip() or len(message) > SUCCESS_MSG_MAX:
        raise TransferInputError(f"--message must be 1..{SUCCESS_MSG_MAX} characters (got {len(message)})")
    active = await reads.active_members(t.wecom)
    unknown = [u for u in (old, new) if u not in active]
    if unknown:
        raise TransferInputError(f"unknown or departed staff member(s): {', '.join(unknown)}")
    if old == new:
        raise TransferInputError("--from and --to are the same member")
    theirs = await reads.customers_of(t.wecom, old)
    strangers = [c for c in chosen if c not in theirs]
    if strangers:
        raise TransferInputError(f"not customers of {old}: {', '.join(strangers[:5])}")
    customers = chosen or theirs
    chats = await reads.groups_of(t.wecom, old) if with_groups else []
    if not customers and not chats:
        raise TransferInputError(f"{old} has no customers to hand over")
    plan, group_plan = assign(customers, (new,)), assign(chats, (new,))
    show_plan(t, "handover", old, plan, group_plan, dry_run)
    if dry_run:
        return 0
    batch = await t.tx(lambda ctx: record(ctx, "handover", "onjob", old, f"to:{new}", plan, group_plan, message))
    t.say(f"requested as {batch}: the running server sends it; follow it with `siyu-bot staff transfers`")
    return 0


# --- reports -------------------------------------------------------------------------------------


async def show_transfers(t: Tools, pending: bool) -> int:
    async def read(ctx: Context) -> tuple[list[tuple[Any, ...]], list[StaffTransfer]]:
        counts = await transfer_counts(ctx.session)
        return counts, (await pending_transfers(ctx.session) if pending else [])

    counts, rows = await t.tx(read)
    if not counts:
        t.say("no transfers yet")
        return 0
    for batch, kind, old, new, state, n in counts:
        t.say(f"{batch}  {kind:<8} {old} → {new}  {state:<15} {n}")
    for row in rows:
        due = row.takeover_at.isoformat() if row.takeover_at else "?"
        t.say(f"  pending {row.external_userid} ({row.state}, takeover {due})")
    groups = await t.tx(lambda ctx: group_counts(ctx.session))
    for (batch, state), n in sorted(groups.items()):
        t.say(f"{batch}  groups {state:<15} {n}")
    return 0


async def show_audit(t: Tools) -> int:
    rows = await t.tx(lambda ctx: audit_trail(ctx.session))
    if not rows:
        t.say("no transfer commands yet")
    for a in rows:
        t.say(f"{a.at:%Y-%m-%d %H:%M} {a.batch} {a.command} from {a.from_userid} ({a.rule}): "
              f"{a.customers} customers, {a.groups} groups {a.plan}")  # fmt: skip
    return 0


async def directory(t: Tools) -> int:
    active = await reads.active_members(t.wecom)
    for userid in active:
        user = await reads.member(t.wecom, userid)
        await t.tx(remembering(user))
    t.say(f"{len(active)} members' departments stored")
    return 0


# --- argparse ------------------------------------------------------------------------------------


def _run(args: argparse.Namespace, fn: Callable[[Tools], Awaitable[int]]) -> int:
    return asyncio.run(run_with(migrated_settings_of(args), sys.stdout, None, fn))


def cmd_transfer(args: argparse.Namespace) -> int:
    try:
        rule = parse_rule(args.to, args.rule)
    except TransferInputError as exc:
        print(f"error: {exc}")
        return 2
    return _run(args, lambda t: transfer(t, args.from_userid, rule, args.groups, args.dry_run))


def cmd_handover(args: argparse.Namespace) -> int:
    chosen = [c for part in args.customers or [] for c in part.split(",") if c]
    return _run(args, lambda t: handover(t, args.from_userid, args.to, args.message, chosen, args.groups, args.dry_run))


def add_commands(sub: SubParsers[argparse.ArgumentParser]) -> None:
    staff = sub.add_parser("staff", help="staff changes: 离职继承, 在职转接, transfer results and their audit")
    ssub = staff.add_subparsers(dest="staff_command", required=True)
    ssub.add_parser("departed", help="departed members' unassigned customers and groups").set_defaults(
        func=lambda a: _run(a, departed)
    )
    tr = ssub.add_parser("transfer", help="hand a departed member's customers (and groups) to successors")
    tr.add_argument("--from", dest="from_userid", required=True)
    tr.add_argument("--to", help="the successor's userid")
    tr.add_argument("--rule", help="same-department | round-robin:V1,V2")
    tr.add_argument("--groups", action="store_true", help="their customer groups too (groupchat/transfer)")
    tr.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    tr.set_defaults(func=cmd_transfer)
    ho = ssub.add_parser("handover", help="在职转接: hand an employed member's customers to another member")
    ho.add_argument("--from", dest="from_userid", required=True)
    ho.add_argument("--to", required=True)
    ho.add_argument("--message", required=True, help="transfer_success_msg, ≤ 200 characters")
    ho.add_argument("--customers", nargs="*", help="external_userids (default: all of --from's customers)")
    ho.add_argument("--groups", action="store_true", help="their customer groups too (groupchat/onjob_transfer)")
    ho.add_argument("--dry-run", action="store_true")
    ho.set_defaults(func=cmd_handover)
    ts = ssub.add_parser("transfers", help="every transfer's state, counts per state")
    ts.add_argument("--pending", action="store_true", help="list the customers still waiting")
    ts.set_defaults(func=lambda a: _run(a, lambda t: show_transfers(t, a.pending)))
    ssub.add_parser("audit", help="every transfer command given").set_defaults(func=lambda a: _run(a, show_audit))
    ssub.add_parser("directory", help="store every member's departments (for --rule same-department)").set_defaults(
        func=lambda a: _run(a, directory)
    )
