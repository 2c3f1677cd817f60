"""``siyu-bot sop preview``: what the SOP engine would send to whom in the next N days, and what it would stop.

Read-only by construction: the report runs in one transaction that is ``READ ONLY`` on PostgreSQL and on a
``PRAGMA query_only`` connection on SQLite, and is rolled back — a preview can never write a row.

* **Drip steps** — pending steps of active enrolments due before the window ends, each with the decision
  :func:`handlers.sop.budget.decide` (which only reads the ledger) would give *if it ran at its due time*: ``send``,
  ``defer`` (until when, e.g. quiet hours), ``skip`` (e.g. the monthly group-send quota), or ``missed`` for
  a step already later than ``budget.missed_after``. Each decision is made against the ledger as it stands:
  sends planned earlier in the window are not counted, so caps can only make the real run stricter.
  ``mp_custom`` steps also say when no customer-service window would be open (the step then waits).
* **Group posts** — every fire :func:`bot.scheduler.due_fires` finds in the window, resolved to the groups
  known now, one row per owner batch (or robot), with the per-group budget at the fire time.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.content import Content
from bot.db.engine import make_engine
from bot.db.models import Customer
from bot.scheduler import due_fires
from handlers.sop.budget import decide
from handlers.sop.content import sop_of
from handlers.sop.content.model import Delivery, GroupPost
from handlers.sop.mp_windows import EVENT_WINDOW, MESSAGE_WINDOW
from handlers.sop.tables import DripEnrolment, DripStepRun, MpWindow

CSV_HEADER = ("due_local", "kind", "customer_or_target", "source", "delivery", "category", "groups", "decision",
              "defer_until_local", "reason")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Planned:
    """One would-be send: a drip step, or one target (owner batch / robot group) of a group-post fire."""

    due: datetime
    kind: str  # "drip" | "post"
    who: str  # the customer, or the post's target ("owner:lulu")
    source: str  # "mp_48h/2" | "mon_new_arrivals"
    delivery: str
    category: str
    decision: str  # send | defer | skip | missed | "send 3, skip 1"
    reason: str = ""
    until: datetime | None = None
    groups: int = 0
    sends: int = 0
    stops: tuple[str, ...] = field(default=())  # one reason per stopped message (a step, or a group)


@asynccontextmanager
async def read_only_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session that cannot write: READ ONLY transaction / ``query_only`` connection, always rolled back."""
    engine = make_engine(settings.database)
    try:
        async with engine.connect() as conn:
            pragma = "SET TRANSACTION READ ONLY" if conn.dialect.name == "postgresql" else "PRAGMA query_only = ON"
            await conn.execute(text(pragma))
            async with AsyncSession(bind=conn) as session:
                yield session
            await conn.rollback()
    finally:
        await engine.dispose()


def customer_label(customer: Customer) -> str:
    name = customer.name or customer.openid or customer.external_userid or ""
    return f"#{customer.id} {name[:24]}".strip()


async def drip_plan(
    session: AsyncSession, content: Content, now: datetime, until: datetime, tz: tzinfo, limit: int
) -> tuple[list[Planned], int]:
    """Pending steps of active enrolments due by ``until`` (at most ``limit``) and how many there are."""
    due = (DripStepRun.state == "pending", DripEnrolment.state == "active", DripStepRun.due_at <= until)
    query = (
        select(DripStepRun, Customer)
        .join(DripEnrolment, DripEnrolment.id == DripStepRun.enrolment_id)
        .join(Customer, Customer.id == DripStepRun.customer_id)
        .where(*due)
    )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = (await session.execute(query.order_by(DripStepRun.due_at, DripStepRun.id).limit(limit))).all()
    return [await _step(session, content, step, customer, now, tz) for step, customer in rows], int(total or 0)


async def _step(
    session: AsyncSession, content: Content, step: DripStepRun, customer: Customer, now: datetime, tz: tzinfo
) -> Planned:
    drip = sop_of(content).drip(step.drip_id)
    spec = next((s for s in drip.steps if s.id == step.step_id), None) if drip is not None else None
    who, source = customer_label(customer), f"{step.drip_id}/{step.step_id}"
    if spec is None:
        return Planned(step.due_at, "drip", who, source, "?", "?", "skip", "step no longer in the content",
                       stops=("step no longer in the content",))  # fmt: skip
    row = Planned(step.due_at, "drip", who, f"{source} {spec.message}", spec.delivery.value, spec.category.value, "")
    budget = sop_of(content).budget
    if now - step.due_at > budget.missed_after:
        reason = f"already more than {budget.missed_after} late"
        return _with(row, "missed", reason, stops=(reason,))
    at = max(step.due_at, now)
    decision = await decide(
        session, customer_id=customer.id, category=spec.category, delivery=spec.delivery, at=at, budget=budget, tz=tz
    )
    if decision.outcome != "ok":
        return _with(row, decision.outcome, decision.reason or "", decision.defer_until, (decision.reason or "",))
    note = await _window_note(session, customer, at) if spec.delivery is Delivery.MP_CUSTOM else ""
    return _with(row, "send", note or (step.reason or ""), sends=1)


def _with(
    row: Planned, decision: str, reason: str, until: datetime | None = None, stops: tuple[str, ...] = (), sends: int = 0
) -> Planned:
    return Planned(row.due, row.kind, row.who, row.source, row.delivery, row.category, decision, reason, until,
                   row.groups, sends, stops)  # fmt: skip


async def _window_note(session: AsyncSession, customer: Customer, at: datetime) -> str:
    """Whether an Official Account customer-service window would be open at ``at`` (as far as known now)."""
    if not customer.openid or not customer.mp_follower:
        return "not following the Official Account: will be skipped"
    window = await session.get(MpWindow, customer.openid)
    if window is not None:
        for opened, (length, _) in ((window.message_at, MESSAGE_WINDOW), (window.event_at, EVENT_WINDOW)):
            if opened is not None and opened <= at < opened + length:
                return ""
    return "no customer-service window open then: waits for the customer to write, else skipped"


async def post_plan(
    session: AsyncSession, content: Content, now: datetime, until: datetime, tz: tzinfo
) -> list[Planned]:
    """Group-post fires in ``(now, until]``, per target, with the per-group budget at each fire time."""
    # The target rules live with the feature (handlers → bot); this report reads them, as bot/app.py
    # wires the group SOP, through a local import.
    from handlers.sop.content.group_tags import GROUP_TAGS, GroupTags
    from handlers.sop.group_sop import plan
    from handlers.sop.group_sop_targets import group_budget, known_groups, select_groups

    groups, tags = await known_groups(session), content.one(GROUP_TAGS) or GroupTags()
    posts = {p.id: p for p in sop_of(content).group_posts}
    out: list[Planned] = []
    for post_id, fire_at in due_fires(posts.values(), now, until, tz):
        post = posts[post_id]
        batches = plan(post, select_groups(groups, post.targets, tags))
        if not batches:
            out.append(_post_row(post, fire_at, "-", 0, "no groups", "no known group matches the targets"))
        for batch in batches:
            verdict = await group_budget(session, batch.chat_ids, budget=sop_of(content).budget, delivery=post.delivery,
                                         category=post.category, at=fire_at, tz=tz)  # fmt: skip
            out.append(_verdict_row(post, fire_at, batch.target, len(batch.chat_ids), verdict.allowed, verdict.skipped))
    return out


def _post_row(post: GroupPost, at: datetime, target: str, groups: int, decision: str, reason: str) -> Planned:
    return Planned(at, "post", target, post.id, post.delivery.value, post.category.value, decision, reason,
                   groups=groups)  # fmt: skip


def _verdict_row(
    post: GroupPost, at: datetime, target: str, groups: int, allowed: list[str], skipped: dict[str, str]
) -> Planned:
    parts = [f"send {len(allowed)}"] if allowed else []
    parts += [f"skip {len(skipped)}"] if skipped else []
    reasons = Counter(skipped.values())
    reason = "; ".join(f"{r} ×{n}" for r, n in sorted(reasons.items()))
    row = _post_row(post, at, target, groups, ", ".join(parts), reason)
    return _with(row, row.decision, reason, stops=tuple(skipped.values()), sends=len(allowed))


def _local(at: datetime | None, tz: tzinfo, fmt: str = "%m-%d %H:%M") -> str:
    return at.astimezone(tz).strftime(fmt) if at is not None else ""


def render_csv(rows: Sequence[Planned], tz: tzinfo) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([_local(r.due, tz, "%Y-%m-%d %H:%M"), r.kind, r.who, r.source, r.delivery, r.category,
                         r.groups or "", r.decision, _local(r.until, tz, "%Y-%m-%d %H:%M"), r.reason])  # fmt: skip
    return buf.getvalue()


def render_table(rows: Sequence[Planned], tz: tzinfo, tz_name: str) -> list[str]:
    lines = [f"{'due (' + tz_name + ')':<20}{'kind':<6}{'customer / target':<26}{'drip step / post':<42}"
             f"{'delivery':<18}{'category':<12}decision"]  # fmt: skip
    for r in rows:
        groups = f" ({r.groups} groups)" if r.kind == "post" and r.groups else ""
        decision = r.decision + (f" → {_local(r.until, tz)}" if r.until else "") + (f": {r.reason}" if r.reason else "")
        lines.append(f"{_local(r.due, tz):<20}{r.kind:<6}{(r.who + groups)[:25]:<26}{r.source[:41]:<42}"
                     f"{r.delivery:<18}{r.category:<12}{decision}")  # fmt: skip
    return lines if rows else ["(nothing due in the window)"]


def render_summary(rows: Sequence[Planned], tz: tzinfo) -> list[str]:
    """Per local day: drip sends / stopped, post fires, group sends / stopped; then stops by reason."""
    days: dict[str, Counter[str]] = {}
    for r in rows:
        counts = days.setdefault(r.due.astimezone(tz).strftime("%Y-%m-%d %a"), Counter())
        counts[f"{r.kind}_sends"] += r.sends
        counts[f"{r.kind}_stops"] += len(r.stops)
        counts["fires"] += r.kind == "post"
    lines = ["", f"{'day':<16}{'drip sends':>11}{'drip stopped':>13}{'post targets':>13}{'group sends':>12}"
             f"{'groups stopped':>15}"]  # fmt: skip
    for day, c in sorted(days.items()):
        lines.append(f"{day:<16}{c['drip_sends']:>11}{c['drip_stops']:>13}{c['fires']:>13}{c['post_sends']:>12}"
                     f"{c['post_stops']:>15}")  # fmt: skip
    stops = Counter(reason for r in rows for reason in r.stops)
    lines += ["", "stopped by reason:" if stops else "stopped by reason: none"]
    lines += [f"{n:>6}  {reason}" for reason, n in stops.most_common()]
    return lines


async def print_preview(
    settings: Settings, days: int, as_csv: bool, limit: int = 1000, now: datetime | None = None
) -> int:
    """``siyu-bot sop preview [--days N] [--csv]``; times are local in the configured timezone."""
    from handlers.content import live_content

    content, tz = await live_content(settings), settings.tz
    now = now or datetime.now(UTC)
    until = now + timedelta(days=days)
    async with read_only_session(settings) as session:
        steps, total = await drip_plan(session, content, now, until, tz, limit)
        posts = await post_plan(session, content, now, until, tz)
    rows = sorted([*steps, *posts], key=lambda r: (r.due, r.kind, r.who))
    if as_csv:
        print(render_csv(rows, tz), end="")
        return 0
    shown = f" (the first {limit} of {total} drip steps)" if total > limit else ""
    print(f"SOP preview {_local(now, tz)} → {_local(until, tz)} ({settings.timezone}){shown}: budget decisions as if "
          "each send ran at its due time")  # fmt: skip
    for line in [*render_table(rows, tz, settings.timezone), *render_summary(rows, tz)]:
        print(line.rstrip())
    return 0
