"""Customer and group handovers through the outbox, tracked to their final state.

A command (:mod:`handlers.staff.commands`) stores one ``staff_transfers`` row per customer and queues the
transfer calls, ≤ 100 customers each (docs/platform.md#staff-transfers). Their answers come back here:

* ``transfer_customer`` answers an ``errcode`` per customer: 0 → ``waiting`` (the platform hands the
  customer over 24 h later unless they refuse), anything else → ``failed`` at once.
* :data:`POLL` (a periodic job) asks ``transfer_result`` for every (kind, from, to) with waiting customers
  whose takeover time has come, page by page: status 1 → ``succeeded`` (ownership, drips, attribution and
  the invite code move to the successor, :mod:`handlers.staff.repoint`), 3 → ``refused``, 4 →
  ``limit_exceeded``, 2 → still waiting (its new takeover time kept). Rows whose call failed as a whole
  (a 40097 "not resigned", an expired call) become ``failed`` with the outbox's error.
* The ``transfer_fail`` callback (``UserID`` the successor, ``FailReason`` customer_refused /
  customer_limit_exceed) settles the customer at once.

Every final state emits :class:`~handlers.staff.events.StaffTransferFinished` in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.context import PRIORITY_BULK, Context
from bot.db.models import Customer, OutboxCall
from bot.dispatcher import PlatformResult, Router
from bot.events import TransferFailed
from bot.periodic import Job
from handlers.growth.tables import GroupChat
from handlers.staff.events import StaffTransferFinished
from handlers.staff.repoint import end_relation, repoint
from handlers.staff.successors import TransferInputError
from handlers.staff.tables import StaffGroupTransfer, StaffTransfer

router = Router("staff")

MAX_PER_CALL = 100  # customers per transfer_customer call, chats per groupchat/transfer call
TAKEOVER_DELAY = timedelta(hours=24)
POLL_SECONDS = 600.0
API = {
    "resigned": ("externalcontact/resigned/transfer_customer", "externalcontact/resigned/transfer_result"),
    "onjob": ("externalcontact/transfer_customer", "externalcontact/transfer_result"),
}
GROUP_API = {"resigned": "externalcontact/groupchat/transfer", "onjob": "externalcontact/groupchat/onjob_transfer"}
STATUS = {1: "succeeded", 3: "refused", 4: "limit_exceeded"}
FAIL_REASON = {"customer_refused": "refused", "customer_limit_exceed": "limit_exceeded"}
OPEN = ("requested", "waiting")


def transfer_body(kind: str, old: str, new: str, customers: Sequence[str], message: str | None) -> dict[str, Any]:
    """One transfer call's body; more than 100 customers (the platform's limit) is refused here."""
    if not customers:
        raise TransferInputError("no customers to hand over")
    if len(customers) > MAX_PER_CALL:
        raise TransferInputError(f"{len(customers)} customers in one call: the platform takes at most {MAX_PER_CALL}")
    body: dict[str, Any] = {"handover_userid": old, "takeover_userid": new, "external_userid": list(customers)}
    if kind == "onjob" and message:
        body["transfer_success_msg"] = message
    return body


async def request_customers(
    ctx: Context, batch: str, kind: str, old: str, plan: dict[str, str], message: str | None = None
) -> int:
    """Store a row per customer and queue the calls (``plan``: external_userid → successor)."""
    by_successor: dict[str, list[str]] = {}
    for ext, new in plan.items():
        by_successor.setdefault(new, []).append(ext)
    ids = await _customer_ids(ctx, list(plan))
    n = 0
    for new, customers in by_successor.items():
        for i in range(0, len(customers), MAX_PER_CALL):
            chunk = customers[i : i + MAX_PER_CALL]
            body = transfer_body(kind, old, new, chunk, message)
            call = ctx.call_platform("wecom", API[kind][0], body, key=f"global:staff:{batch}:{n}",
                                     priority=PRIORITY_BULK, then="staff_transfer_started")  # fmt: skip
            n += 1
            await ctx.session.flush()
            ctx.session.add_all(
                StaffTransfer(batch=batch, kind=kind, from_userid=old, to_userid=new, external_userid=ext,
                              customer_id=ids.get(ext), state="requested", outbox_id=call.id, requested_at=ctx.now())
                for ext in chunk
            )  # fmt: skip
    return n


async def request_groups(ctx: Context, batch: str, kind: str, old: str, plan: dict[str, str]) -> None:
    """Store a row per group and queue ``groupchat/transfer`` (or ``onjob_transfer``), ≤ 100 chats a call."""
    by_owner: dict[str, list[str]] = {}
    for chat_id, new in plan.items():
        by_owner.setdefault(new, []).append(chat_id)
    n = 0
    for new, chats in by_owner.items():
        for i in range(0, len(chats), MAX_PER_CALL):
            chunk = chats[i : i + MAX_PER_CALL]
            call = ctx.call_platform("wecom", GROUP_API[kind], {"chat_id_list": chunk, "new_owner": new},
                                     key=f"global:staff:{batch}:g{n}", priority=PRIORITY_BULK,
                                     then="staff_group_transfer")  # fmt: skip
            n += 1
            await ctx.session.flush()
            ctx.session.add_all(
                StaffGroupTransfer(batch=batch, kind=kind, chat_id=c, from_userid=old, to_userid=new,
                                   outbox_id=call.id, requested_at=ctx.now())
                for c in chunk
            )  # fmt: skip


async def _customer_ids(ctx: Context, external_userids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i in range(0, len(external_userids), 500):
        rows = await ctx.session.execute(
            select(Customer.external_userid, Customer.id).where(
                Customer.external_userid.in_(external_userids[i : i + 500])
            )
        )
        found.update({str(ext): int(cid) for ext, cid in rows.all()})
    return found


# --- answers -------------------------------------------------------------------------------------


@router.on_result("staff_transfer_started")
async def transfer_started(result: PlatformResult, ctx: Context) -> None:
    codes = {str(c.get("external_userid")): c.get("errcode") for c in _dicts(result.response.get("customer"))}
    rows = await ctx.session.scalars(
        select(StaffTransfer).where(StaffTransfer.outbox_id == result.call_id, StaffTransfer.state == "requested")
    )
    for row in rows.all():
        code = codes.get(row.external_userid)
        if code == 0:
            row.state, row.status, row.takeover_at = "waiting", 2, ctx.now() + TAKEOVER_DELAY
        else:
            errcode = code if isinstance(code, int) else None
            await finish(
                ctx, row, "failed", errcode=errcode, reason="not in the platform's answer" if code is None else None
            )


@router.on_result("staff_group_transfer")
async def groups_transferred(result: PlatformResult, ctx: Context) -> None:
    failed = {str(c.get("chat_id")): c for c in _dicts(result.response.get("failed_chat_list"))}
    rows = await ctx.session.scalars(
        select(StaffGroupTransfer).where(
            StaffGroupTransfer.outbox_id == result.call_id, StaffGroupTransfer.state == "requested"
        )
    )
    for row in rows.all():
        row.finished_at = ctx.now()
        fail = failed.get(row.chat_id)
        if fail is not None:
            code = fail.get("errcode")
            row.state, row.errcode = "failed", code if isinstance(code, int) else None
            row.reason = str(fail.get("errmsg") or "")[:500] or None
            continue
        row.state = "succeeded"
        group = await ctx.session.get(GroupChat, row.chat_id)
        if group is not None:
            group.owner, group.updated_at = row.to_userid, ctx.now()


@router.on_result("staff_transfer_result")
async def transfer_results(result: PlatformResult, ctx: Context) -> None:
    kind = "resigned" if result.api == API["resigned"][1] else "onjob"
    old, new = str(result.request.get("handover_userid")), str(result.request.get("takeover_userid"))
    for item in _dicts(result.response.get("customer")):
        row = await _open_row(ctx, kind, old, new, str(item.get("external_userid")))
        status, at = item.get("status"), item.get("takeover_time")
        if row is None or not isinstance(status, int):
            continue
        row.status = status
        when = datetime.fromtimestamp(at, ctx.now().tzinfo) if isinstance(at, int) and at > 0 else None
        if status == 2:
            row.state, row.takeover_at = "waiting", when or row.takeover_at
        elif status in STATUS:
            row.takeover_at = when if status == 1 else row.takeover_at
            await finish(ctx, row, STATUS[status])
    cursor = result.response.get("next_cursor")
    if isinstance(cursor, str) and cursor:
        body = {"handover_userid": old, "takeover_userid": new, "cursor": cursor}
        ctx.call_platform(
            "wecom", result.api, body, key=f"result:{kind}:{old}:{new}:{cursor}", then="staff_transfer_result"
        )


async def _open_row(ctx: Context, kind: str, old: str, new: str, ext: str) -> StaffTransfer | None:
    found = await ctx.session.scalars(
        select(StaffTransfer)
        .where(StaffTransfer.kind == kind, StaffTransfer.from_userid == old, StaffTransfer.to_userid == new,
               StaffTransfer.external_userid == ext, StaffTransfer.state.in_(OPEN))
        .order_by(StaffTransfer.id.desc())
        .limit(1)
    )  # fmt: skip
    return found.first()


@router.on(TransferFailed)
async def transfer_failed(event: TransferFailed, ctx: Context) -> None:
    """``UserID`` is the successor; the platform does not say which handover, so the latest open one for
    this customer and successor is settled."""
    found = await ctx.session.scalars(
        select(StaffTransfer)
        .where(StaffTransfer.to_userid == event.user_id, StaffTransfer.external_userid == event.external_userid,
               StaffTransfer.state.in_(OPEN))
        .order_by(StaffTransfer.id.desc())
        .limit(1)
    )  # fmt: skip
    row = found.first()
    if row is None:
        return
    state = FAIL_REASON.get(event.fail_reason or "", "failed")
    row.status = {"refused": 3, "limit_exceeded": 4}.get(state, row.status)
    await finish(ctx, row, state, reason=f"transfer_fail: {event.fail_reason}")


async def finish(
    ctx: Context, row: StaffTransfer, state: str, *, errcode: int | None = None, reason: str | None = None
) -> None:
    """The customer's handover is final: record it, re-point on success, tell the other features."""
    row.state, row.finished_at = state, ctx.now()
    row.errcode, row.reason = errcode if errcode is not None else row.errcode, reason or row.reason
    if row.customer_id is None:
        row.customer_id = await ctx.session.scalar(
            select(Customer.id).where(Customer.external_userid == row.external_userid)
        )
    if state == "succeeded" and row.customer_id is not None:
        await repoint(ctx, row.customer_id, row.from_userid, row.to_userid, row.takeover_at or ctx.now())
    elif row.kind == "resigned" and state in ("refused", "limit_exceeded") and row.customer_id is not None:
        await end_relation(ctx, row.customer_id, row.from_userid, ctx.now())
    await ctx.emit(
        StaffTransferFinished(
            row.customer_id, row.external_userid, row.kind, row.from_userid, row.to_userid, state, row.errcode,
            row.id, ctx.now(),
        )
    )  # fmt: skip


# --- the poll ------------------------------------------------------------------------------------


async def poll_results(ctx: Context) -> int:
    """Settle rows whose call failed as a whole; ask ``transfer_result`` for every pair with a customer
    whose takeover time has come. Returns the number of result calls queued."""
    await _calls_failed(ctx)
    due = await ctx.session.execute(
        select(StaffTransfer.kind, StaffTransfer.from_userid, StaffTransfer.to_userid)
        .where(StaffTransfer.state == "waiting", StaffTransfer.takeover_at <= ctx.now())
        .distinct()
    )
    pairs = sorted(set(due.all()))
    for kind, old, new in pairs:
        body = {"handover_userid": old, "takeover_userid": new}
        ctx.call_platform("wecom", API[kind][1], body, key=f"result:{kind}:{old}:{new}", then="staff_transfer_result")
    return len(pairs)


async def _calls_failed(ctx: Context) -> None:
    rows = await ctx.session.execute(
        select(StaffTransfer, OutboxCall.state, OutboxCall.last_error)
        .join(OutboxCall, OutboxCall.id == StaffTransfer.outbox_id)
        .where(StaffTransfer.state == "requested", OutboxCall.state.in_(("failed", "expired", "uncertain")))
    )
    for row, call_state, error in rows.all():
        if call_state == "uncertain":  # the platform may have started it: the result poll will tell
            row.state, row.takeover_at = "waiting", row.requested_at + TAKEOVER_DELAY
            continue
        await finish(ctx, row, "failed", errcode=_errcode(error), reason=f"call {call_state}: {error or ''}"[:500])
    groups = await ctx.session.execute(
        select(StaffGroupTransfer, OutboxCall.state, OutboxCall.last_error)
        .join(OutboxCall, OutboxCall.id == StaffGroupTransfer.outbox_id)
        .where(StaffGroupTransfer.state == "requested", OutboxCall.state.in_(("failed", "expired")))
    )
    for group, call_state, error in groups.all():
        group.state, group.finished_at = "failed", ctx.now()
        group.errcode, group.reason = _errcode(error), f"call {call_state}: {error or ''}"[:500]


def _errcode(error: str | None) -> int | None:
    """The platform's errcode in an outbox error (``ApiError: api: errcode=40097 errmsg=…``)."""
    found = re.search(r"errcode=(-?\d+)", error or "")
    return int(found.group(1)) if found else None


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


POLL = Job("staff_transfer_results", POLL_SECONDS, poll_results)
