"""``siyu-bot sop status``: what the SOP engine is doing and, for everything it did not send, why.

Sections: enrolments by drip and state (with stop reasons); drip steps by state — ``pending`` split into
``deferred`` (budget: quiet hours, caps) and ``waiting`` (no Official Account window) — with reasons and the
latest N; group fires by state (the fire marker's ``missed`` included) with reasons and the latest N;
failed/expired/uncertain outbox calls of the SOP (keys ``global:drip…`` / ``global:gsop…``) with their last error; and
the ledger's deferred/skipped reasons of the last 7 days. Reasons are grouped with their measurements
(how late, until when) taken out; the latest rows show them in full. Read-only, like the preview.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.models import OutboxCall
from handlers.sop.reports import read_only_session
from handlers.sop.tables import ContactLedger, DripEnrolment, DripStepRun, GroupFire

MARKER = "post"  # the group fire's marker row (handlers.sop.group_sop.MARKER)
STEP_ISSUES = ("deferred", "waiting", "skipped", "missed", "cancelled")
FIRE_ISSUES = ("missed", "skipped", "failed", "unconfirmed", "expired")
SOP_KEYS = ("global:drip%", "global:gsop%")
LEDGER_DAYS = 7
_MEASURES = (
    (re.compile(r"; until \S+$"), ""),  # "quiet hours 22:00-08:00; until 2026-11-24T00:00:00+00:00"
    (re.compile(r"due .+? ago"), "due … ago"),  # "missed: due 1:00:00 ago, more than 0:30:00"
    (re.compile(r"^\S+(?: days?, \S+)? late;"), "… late;"),  # "1:00:00 late; missed_after is 0:30:00"
)


def reason_kind(reason: str | None) -> str:
    """A reason without its measurements, for counting (``deferred: quiet hours 22:00-08:00``)."""
    text = reason or "-"
    for pattern, replacement in _MEASURES:
        text = pattern.sub(replacement, text)
    return text


def step_state(state: str, reason: str | None) -> str:
    if state == "pending" and reason and reason.startswith(("deferred:", "waiting:")):
        return reason.split(":", 1)[0]
    return state


def _counts(rows: Iterable[tuple[str, str | None, int]]) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    states: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    for state, reason, n in rows:
        states[state] += n
        reasons[(state, reason_kind(reason))] += n
    return states, reasons


def _reason_lines(reasons: Counter[tuple[str, str]], issues: tuple[str, ...]) -> list[str]:
    return [f"  {n:>6}  {state:<12}{reason}" for (state, reason), n in reasons.most_common() if state in issues]


def _local(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%m-%d %H:%M") if at is not None else "-"


async def drip_section(session: AsyncSession, tz: tzinfo, latest: int) -> list[str]:
    lines = ["Drips (enrolments by state)", f"  {'drip':<24}{'active':>8}{'completed':>11}{'stopped':>9}  stop reasons"]
    rows = (await session.execute(
        select(DripEnrolment.drip_id, DripEnrolment.state, DripEnrolment.stop_reason, func.count())
        .group_by(DripEnrolment.drip_id, DripEnrolment.state, DripEnrolment.stop_reason)
    )).all()  # fmt: skip
    drips: dict[str, Counter[str]] = {}
    for drip_id, state, stop_reason, n in rows:
        drips.setdefault(drip_id, Counter())[state] += n
        if stop_reason:
            drips[drip_id][f"reason:{stop_reason}"] += n
    for drip_id, c in sorted(drips.items()):
        why = ", ".join(f"{k[7:]} ×{n}" for k, n in sorted(c.items()) if k.startswith("reason:"))
        lines.append(f"  {drip_id:<24}{c['active']:>8}{c['completed']:>11}{c['stopped']:>9}  {why}")
    if not drips:
        lines.append("  (no enrolments)")
    return [*lines, "", *(await _step_lines(session, tz, latest))]


async def _step_lines(session: AsyncSession, tz: tzinfo, latest: int) -> list[str]:
    grouped = (await session.execute(
        select(DripStepRun.state, DripStepRun.reason, func.count()).group_by(DripStepRun.state, DripStepRun.reason)
    )).all()  # fmt: skip
    states, reasons = _counts((step_state(s, r), r, n) for s, r, n in grouped)
    order = ("pending", "deferred", "waiting", "sent", "skipped", "missed", "cancelled")
    lines = ["Drip steps: " + (", ".join(f"{s} {states[s]}" for s in order if states[s]) or "none")]
    lines += _reason_lines(reasons, STEP_ISSUES)
    issues = or_(DripStepRun.state.in_(("skipped", "missed", "cancelled")), DripStepRun.reason.is_not(None))
    recent = await session.scalars(
        select(DripStepRun).where(issues, DripStepRun.state != "sent")
        .order_by(func.coalesce(DripStepRun.finished_at, DripStepRun.due_at).desc(), DripStepRun.id.desc())
        .limit(latest)
    )  # fmt: skip
    shown = [
        f"  {_local(s.finished_at or s.due_at, tz):<13}customer #{s.customer_id:<8}{s.drip_id + '/' + s.step_id:<24}"
        f"{step_state(s.state, s.reason):<11}{s.reason or ''}"
        for s in recent.all()
    ]
    return lines + ([f"  latest {len(shown)}:", *shown] if shown else [])


async def fire_section(session: AsyncSession, tz: tzinfo, latest: int) -> list[str]:
    marker_missed = (GroupFire.target == MARKER) & GroupFire.state.in_(("missed", "firing"))
    relevant = or_(GroupFire.target != MARKER, marker_missed)
    grouped = (await session.execute(
        select(GroupFire.state, GroupFire.reason, func.count()).where(relevant)
        .group_by(GroupFire.state, GroupFire.reason)
    )).all()  # fmt: skip
    states, reasons = _counts(grouped)
    order = ("firing", "pending", "queued", "sent", "confirmed", "unconfirmed", "failed", "missed", "skipped")
    lines = ["Group fires: " + (", ".join(f"{s} {states[s]}" for s in order if states[s]) or "none")]
    lines += _reason_lines(reasons, FIRE_ISSUES)
    recent = await session.scalars(
        select(GroupFire).where(relevant, GroupFire.state.in_(FIRE_ISSUES))
        .order_by(GroupFire.fire_at.desc(), GroupFire.id.desc()).limit(latest)
    )  # fmt: skip
    shown = [
        f"  {_local(f.fire_at, tz):<13}{f.post_id:<22}{'(the whole fire)' if f.target == MARKER else f.target:<20}"
        f"{f.state:<12}{f.reason or ''}"
        for f in recent.all()
    ]
    return lines + ([f"  latest {len(shown)}:", *shown] if shown else [])


async def outbox_section(session: AsyncSession, tz: tzinfo, latest: int) -> list[str]:
    sop = or_(*(OutboxCall.idempotency_key.like(k) for k in SOP_KEYS))
    bad = (OutboxCall.state.in_(("failed", "expired", "uncertain")), sop)
    grouped = (await session.execute(
        select(OutboxCall.api, OutboxCall.state, func.count()).where(*bad).group_by(OutboxCall.api, OutboxCall.state)
    )).all()  # fmt: skip
    summary = ", ".join(f"{a} {s} {n}" for a, s, n in grouped) or "none"
    lines = [f"SOP platform calls failed/expired/uncertain (answer lost, not re-sent): {summary}"]
    recent = await session.scalars(
        select(OutboxCall).where(*bad).order_by(OutboxCall.id.desc()).limit(latest)
    )  # fmt: skip
    for call in recent.all():
        when = _local(call.finished_at or call.created_at, tz)
        lines.append(f"  {when:<13}{call.api:<36}{call.state:<9}{call.idempotency_key:<28}{call.last_error or ''}")
    return lines


async def ledger_section(session: AsyncSession, now: datetime) -> list[str]:
    since = now - timedelta(days=LEDGER_DAYS)
    grouped = (await session.execute(
        select(ContactLedger.outcome, ContactLedger.reason, func.count())
        .where(ContactLedger.at >= since).group_by(ContactLedger.outcome, ContactLedger.reason)
    )).all()  # fmt: skip
    outcomes, reasons = _counts(grouped)
    summary = ", ".join(f"{o} {outcomes[o]}" for o in ("sent", "deferred", "skipped") if outcomes[o]) or "nothing"
    lines = [f"Contact ledger, last {LEDGER_DAYS} days: {summary}"]
    return lines + _reason_lines(reasons, ("deferred", "skipped"))


async def status_lines(session: AsyncSession, tz: tzinfo, now: datetime, latest: int) -> list[str]:
    return [
        *await drip_section(session, tz, latest), "",
        *await fire_section(session, tz, latest), "",
        *await outbox_section(session, tz, latest), "",
        *await ledger_section(session, now),
    ]  # fmt: skip


async def print_status(settings: Settings, latest: int = 10, now: datetime | None = None) -> int:
    """``siyu-bot sop status``; times are local in the configured timezone."""
    now = now or datetime.now(UTC)
    async with read_only_session(settings) as session:
        lines = await status_lines(session, settings.tz, now, latest)
    print(f"SOP status at {_local(now, settings.tz)} ({settings.timezone})")
    for line in lines:
        print(line.rstrip())
    return 0
