"""``siyu-bot sop status``: what the SOP engine is doing and, for everything it did not send, why.

Sections: enrolments by drip and state (with stop reasons); drip steps by state — ``pending`` split into
``deferred`` (budget: quiet hours, caps) and ``waiting`` (no Official Account window) — with reasons and the
latest N; group fires by state (the fire marker's ``missed`` included) with reasons and the latest N;
failed/expired/uncertain outbox calls of the SOP (keys ``global:drip…`` / ``global:gsop…``) with their last error; and
the ledger's deferred/skipped reasons of the last 7 days. Reasons are grouped with their measurements
(how late, until when) taken out; the latest rows show them in full. Read-only, like the preview.

:func:`sop_status` reads the figures (the CLI and ``GET /api/v1/sop/status`` share it); :func:`status_lines`
prints them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
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
STEP_ORDER = ("pending", "deferred", "waiting", "sent", "skipped", "missed", "cancelled")
FIRE_ORDER = ("firing", "pending", "queued", "sent", "confirmed", "unconfirmed", "failed", "missed", "skipped")
LEDGER_OUTCOMES = ("sent", "deferred", "skipped")
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


@dataclass(frozen=True, slots=True)
class ReasonCount:
    state: str
    reason: str  # without its measurements (:func:`reason_kind`)
    count: int


@dataclass(frozen=True, slots=True)
class DripFigures:
    drip_id: str
    states: dict[str, int]  # active, completed, stopped
    stop_reasons: dict[str, int]


@dataclass(frozen=True, slots=True)
class StepIssue:
    at: datetime
    customer_id: int
    drip_id: str
    step_id: str
    state: str  # with pending split into deferred / waiting
    reason: str | None


@dataclass(frozen=True, slots=True)
class FireIssue:
    at: datetime
    post_id: str
    target: str  # "post": the whole fire
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class CallIssue:
    at: datetime
    api: str
    state: str
    idempotency_key: str
    error: str | None


@dataclass(frozen=True, slots=True)
class CallCount:
    api: str
    state: str
    count: int


@dataclass(frozen=True)
class SopStatus:
    """The figures of ``siyu-bot sop status`` (and of ``GET /api/v1/sop/status``)."""

    at: datetime
    drips: list[DripFigures]
    steps: dict[str, int]
    step_reasons: list[ReasonCount]
    latest_steps: list[StepIssue]
    fires: dict[str, int]
    fire_reasons: list[ReasonCount]
    latest_fires: list[FireIssue]
    calls: list[CallCount]
    latest_calls: list[CallIssue]
    ledger: dict[str, int]
    ledger_reasons: list[ReasonCount] = field(default_factory=list)


def _counts(
    rows: Iterable[tuple[str, str | None, int]], issues: tuple[str, ...]
) -> tuple[dict[str, int], list[ReasonCount]]:
    states: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    for state, reason, n in rows:
        states[state] += n
        reasons[(state, reason_kind(reason))] += n
    kept = [ReasonCount(state, reason, n) for (state, reason), n in reasons.most_common() if state in issues]
    return dict(states), kept


async def drip_figures(session: AsyncSession) -> list[DripFigures]:
    rows = (await session.execute(
        select(DripEnrolment.drip_id, DripEnrolment.state, DripEnrolment.stop_reason, func.count())
        .group_by(DripEnrolment.drip_id, DripEnrolment.state, DripEnrolment.stop_reason)
    )).all()  # fmt: skip
    states: dict[str, Counter[str]] = {}
    reasons: dict[str, Counter[str]] = {}
    for drip_id, state, stop_reason, n in rows:
        states.setdefault(drip_id, Counter())[state] += n
        reasons.setdefault(drip_id, Counter())
        if stop_reason:
            reasons[drip_id][stop_reason] += n
    return [
        DripFigures(d, {s: states[d][s] for s in ("active", "completed", "stopped")}, dict(sorted(reasons[d].items())))
        for d in sorted(states)
    ]


async def step_figures(session: AsyncSession, latest: int) -> tuple[dict[str, int], list[ReasonCount], list[StepIssue]]:
    grouped = (await session.execute(
        select(DripStepRun.state, DripStepRun.reason, func.count()).group_by(DripStepRun.state, DripStepRun.reason)
    )).all()  # fmt: skip
    states, reasons = _counts(((step_state(s, r), r, n) for s, r, n in grouped), STEP_ISSUES)
    issues = or_(DripStepRun.state.in_(("skipped", "missed", "cancelled")), DripStepRun.reason.is_not(None))
    recent = await session.scalars(
        select(DripStepRun).where(issues, DripStepRun.state != "sent")
        .order_by(func.coalesce(DripStepRun.finished_at, DripStepRun.due_at).desc(), DripStepRun.id.desc())
        .limit(latest)
    )  # fmt: skip
    shown = [
        StepIssue(
            s.finished_at or s.due_at, s.customer_id, s.drip_id, s.step_id, step_state(s.state, s.reason), s.reason
        )
        for s in recent.all()
    ]
    return states, reasons, shown


async def fire_figures(session: AsyncSession, latest: int) -> tuple[dict[str, int], list[ReasonCount], list[FireIssue]]:
    marker_missed = (GroupFire.target == MARKER) & GroupFire.state.in_(("missed", "firing"))
    relevant = or_(GroupFire.target != MARKER, marker_missed)
    grouped = (await session.execute(
        select(GroupFire.state, GroupFire.reason, func.count()).where(relevant)
        .group_by(GroupFire.state, GroupFire.reason)
    )).all()  # fmt: skip
    states, reasons = _counts(grouped, FIRE_ISSUES)
    recent = await session.scalars(
        select(GroupFire).where(relevant, GroupFire.state.in_(FIRE_ISSUES))
        .order_by(GroupFire.fire_at.desc(), GroupFire.id.desc()).limit(latest)
    )  # fmt: skip
    return states, reasons, [FireIssue(f.fire_at, f.post_id, f.target, f.state, f.reason) for f in recent.all()]


async def call_figures(session: AsyncSession, latest: int) -> tuple[list[CallCount], list[CallIssue]]:
    sop = or_(*(OutboxCall.idempotency_key.like(k) for k in SOP_KEYS))
    bad = (OutboxCall.state.in_(("failed", "expired", "uncertain")), sop)
    grouped = (await session.execute(
        select(OutboxCall.api, OutboxCall.state, func.count()).where(*bad).group_by(OutboxCall.api, OutboxCall.state)
    )).all()  # fmt: skip
    recent = await session.scalars(
        select(OutboxCall).where(*bad).order_by(OutboxCall.id.desc()).limit(latest)
    )  # fmt: skip
    issues = [
        CallIssue(c.finished_at or c.created_at, c.api, c.state, c.idempotency_key, c.last_error) for c in recent.all()
    ]
    return [CallCount(a, s, int(n)) for a, s, n in grouped], issues


async def ledger_figures(session: AsyncSession, now: datetime) -> tuple[dict[str, int], list[ReasonCount]]:
    since = now - timedelta(days=LEDGER_DAYS)
    grouped = (await session.execute(
        select(ContactLedger.outcome, ContactLedger.reason, func.count())
        .where(ContactLedger.at >= since).group_by(ContactLedger.outcome, ContactLedger.reason)
    )).all()  # fmt: skip
    return _counts(grouped, ("deferred", "skipped"))


async def sop_status(session: AsyncSession, now: datetime, latest: int) -> SopStatus:
    """Read every figure of the status (read-only)."""
    drips = await drip_figures(session)
    steps, step_reasons, latest_steps = await step_figures(session, latest)
    fires, fire_reasons, latest_fires = await fire_figures(session, latest)
    calls, latest_calls = await call_figures(session, latest)
    ledger, ledger_reasons = await ledger_figures(session, now)
    return SopStatus(now, drips, steps, step_reasons, latest_steps, fires, fire_reasons, latest_fires, calls,
                     latest_calls, ledger, ledger_reasons)  # fmt: skip


# --- the printer ---


def _reason_lines(reasons: list[ReasonCount]) -> list[str]:
    return [f"  {r.count:>6}  {r.state:<12}{r.reason}" for r in reasons]


def _local(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%m-%d %H:%M") if at is not None else "-"


def _summary(states: dict[str, int], order: tuple[str, ...], empty: str) -> str:
    return ", ".join(f"{s} {states[s]}" for s in order if states.get(s)) or empty


def _section(
    title: str, states: dict[str, int], order: tuple[str, ...], reasons: list[ReasonCount], latest: list[str]
) -> list[str]:
    lines = ["", f"{title}: " + _summary(states, order, "none"), *_reason_lines(reasons)]
    return lines + ([f"  latest {len(latest)}:", *(f"  {line}" for line in latest)] if latest else [])


def status_lines(status: SopStatus, tz: tzinfo) -> list[str]:
    lines = ["Drips (enrolments by state)", f"  {'drip':<24}{'active':>8}{'completed':>11}{'stopped':>9}  stop reasons"]
    for d in status.drips:
        why = ", ".join(f"{k} ×{n}" for k, n in d.stop_reasons.items())
        c = d.states
        lines.append(f"  {d.drip_id:<24}{c['active']:>8}{c['completed']:>11}{c['stopped']:>9}  {why}")
    if not status.drips:
        lines.append("  (no enrolments)")
    steps = [
        f"{_local(s.at, tz):<13}customer #{s.customer_id:<8}{s.drip_id + '/' + s.step_id:<24}"
        f"{s.state:<11}{s.reason or ''}"
        for s in status.latest_steps
    ]
    lines += _section("Drip steps", status.steps, STEP_ORDER, status.step_reasons, steps)
    fires = [
        f"{_local(f.at, tz):<13}{f.post_id:<22}{'(the whole fire)' if f.target == MARKER else f.target:<20}"
        f"{f.state:<12}{f.reason or ''}"
        for f in status.latest_fires
    ]
    lines += _section("Group fires", status.fires, FIRE_ORDER, status.fire_reasons, fires)
    summary = ", ".join(f"{c.api} {c.state} {c.count}" for c in status.calls) or "none"
    lines += ["", f"SOP platform calls failed/expired/uncertain (answer lost, not re-sent): {summary}"]
    lines += [
        f"  {_local(c.at, tz):<13}{c.api:<36}{c.state:<9}{c.idempotency_key:<28}{c.error or ''}"
        for c in status.latest_calls
    ]
    ledger = _summary(status.ledger, LEDGER_OUTCOMES, "nothing")
    return [*lines, "", f"Contact ledger, last {LEDGER_DAYS} days: {ledger}", *_reason_lines(status.ledger_reasons)]


async def print_status(settings: Settings, latest: int = 10, now: datetime | None = None) -> int:
    """``siyu-bot sop status``; times are local in the configured timezone."""
    now = now or datetime.now(UTC)
    async with read_only_session(settings) as session:
        status = await sop_status(session, now, latest)
    print(f"SOP status at {_local(now, settings.tz)} ({settings.timezone})")
    for line in status_lines(status, settings.tz):
        print(line.rstrip())
    return 0
