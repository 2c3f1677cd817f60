"""Per-channel growth statistics (``siyu-bot stats channels``).

Definitions, per channel code (unattributed arrivals — unknown or missing codes — form their own row):
- adds: arrivals that made a new relationship (friend added, followed, joined a group) in the period;
  an existing follower scanning a code is a touch, not an add;
- unique: distinct customers among those adds;
- losses: relationships from this channel that ended in the period (customer deleted staff, staff
  deleted customer, unfollow, left group); net = adds − losses;
- welcomes: delivered / expired / failed (not delivered) / unknown / pending / skipped, from the welcome
  rows and their outbox calls;
- variants: how many welcomes each A/B variant (``message/variant``) went out as;
- retention_7d: of the adds at least 7 days old, the share with no loss on the same channel within
  7 days of the add (None when no add is old enough);
- imported: relationships that existed before siyu-bot and were read by ``siyu-bot import`` (touches
  with action ``imported``, at the platform's time): never counted as adds, nor welcomed;
- reconciled: adds whose callback was lost and that ``siyu-bot reconcile`` found later (touches with
  action ``reconciled``, at the platform's time): counted among the adds, never welcomed.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import OutboxCall
from handlers.growth.tables import Loss, Touch, Welcome

IMPORTED = "imported"  # handlers/growth/importer.py
RECONCILED = "reconciled"  # handlers/growth/reconcile.py
ADD_ACTIONS = ("friend_added", "followed", "group_joined", RECONCILED)
UNATTRIBUTED = "(unattributed)"


@dataclass
class ChannelStats:
    code: str
    name: str = ""
    adds: int = 0
    unique: int = 0
    losses: int = 0
    welcomes: Counter[str] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    eligible_7d: int = 0
    retained_7d: int = 0
    imported: int = 0
    reconciled: int = 0

    @property
    def net(self) -> int:
        return self.adds - self.losses

    @property
    def retention_7d(self) -> float | None:
        return self.retained_7d / self.eligible_7d if self.eligible_7d else None


async def channel_stats(
    session: AsyncSession, now: datetime, since: datetime | None = None, until: datetime | None = None
) -> dict[str, ChannelStats]:
    rows: dict[str, ChannelStats] = defaultdict(lambda: ChannelStats(""))
    adds = await _adds(session, since, until)
    losses = await _losses(session)
    by_customer_channel: dict[tuple[int, str | None], list[datetime]] = defaultdict(list)
    for loss in losses:
        by_customer_channel[(loss.customer_id, loss.channel_code)].append(loss.occurred_at)
        if _within(loss.occurred_at, since, until):
            rows[_label(loss.channel_code)].losses += 1
    customers: dict[str, set[int]] = defaultdict(set)
    for touch in adds:
        st = rows[_label(touch.channel_code)]
        st.adds += 1
        customers[_label(touch.channel_code)].add(touch.customer_id)
        if touch.occurred_at <= now - timedelta(days=7):
            st.eligible_7d += 1
            ended = by_customer_channel.get((touch.customer_id, touch.channel_code), [])
            if not any(touch.occurred_at <= t < touch.occurred_at + timedelta(days=7) for t in ended):
                st.retained_7d += 1
    for label, members in customers.items():
        rows[label].unique = len(members)
    await _welcomes(session, rows, since, until)
    for touch in await _adds(session, since, until, actions=(IMPORTED,)):
        rows[_label(touch.channel_code)].imported += 1
    for touch in await _adds(session, since, until, actions=(RECONCILED,)):
        rows[_label(touch.channel_code)].reconciled += 1
    for label, st in rows.items():
        st.code = label
    return dict(rows)


def _label(code: str | None) -> str:
    return code if code is not None else UNATTRIBUTED


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or at >= since) and (until is None or at < until)


async def _adds(
    session: AsyncSession, since: datetime | None, until: datetime | None, actions: tuple[str, ...] = ADD_ACTIONS
) -> list[Touch]:
    query = select(Touch).where(Touch.action.in_(actions))
    if since is not None:
        query = query.where(Touch.occurred_at >= since)
    if until is not None:
        query = query.where(Touch.occurred_at < until)
    return list((await session.scalars(query)).all())


async def _losses(session: AsyncSession) -> list[Loss]:
    return list((await session.scalars(select(Loss))).all())


# Delivered, not delivered (expired: too late; failed: the platform refused), or nobody can tell
# (unknown: the call may have acted but its answer was lost and the code is spent or past its 20 s).
_OUTBOX_TO_WELCOME = {
    "sent": "delivered",
    "expired": "expired",
    "failed": "failed",
    "uncertain": "unknown",
    "pending": "pending",
    "sending": "pending",
}
_ROW_TO_WELCOME = {"sent": "delivered"}  # a passive reply is delivered with the HTTP answer


def welcome_outcome(welcome: Welcome, outbox_state: str | None) -> str:
    """delivered | expired | failed | unknown | pending | skipped: the welcome row, or for a queued welcome
    the state of its outbox call (the truth about what the platform did)."""
    own = _ROW_TO_WELCOME.get(welcome.state, welcome.state)
    return _OUTBOX_TO_WELCOME.get(outbox_state or "", own) if welcome.outbox_id else own


async def _welcomes(
    session: AsyncSession, rows: dict[str, ChannelStats], since: datetime | None, until: datetime | None
) -> None:
    query = select(Welcome, OutboxCall.state).outerjoin(OutboxCall, OutboxCall.id == Welcome.outbox_id)
    if since is not None:
        query = query.where(Welcome.created_at >= since)
    if until is not None:
        query = query.where(Welcome.created_at < until)
    for welcome, outbox_state in (await session.execute(query)).all():
        st = rows[_label(welcome.channel_code)]
        state = welcome_outcome(welcome, outbox_state)
        st.welcomes[state] += 1
        if welcome.variant_ref and state in ("delivered", "pending"):
            st.variants[welcome.variant_ref] += 1


HEADER = ["channel", "name", "adds", "unique", "losses", "net", "welcome_delivered", "welcome_expired",
          "welcome_failed", "welcome_unknown", "variants", "retention_7d", "imported", "reconciled"]  # fmt: skip


def as_rows(stats: dict[str, ChannelStats], names: dict[str, str]) -> list[list[str]]:
    out = []
    for code in sorted(stats, key=lambda c: (c == UNATTRIBUTED, c)):
        st = stats[code]
        retention = "-" if st.retention_7d is None else f"{st.retention_7d:.0%}"
        variants = " ".join(f"{ref.split('/', 1)[-1]}:{n}" for ref, n in sorted(st.variants.items())) or "-"
        out.append([
            code, names.get(code, ""), str(st.adds), str(st.unique), str(st.losses), str(st.net),
            str(st.welcomes["delivered"]), str(st.welcomes["expired"]), str(st.welcomes["failed"]),
            str(st.welcomes["unknown"]), variants, retention, str(st.imported), str(st.reconciled),
        ])  # fmt: skip
    return out


def render_table(rows: list[list[str]]) -> str:
    table = [HEADER, *rows]
    widths = [max(_width(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(line.rstrip() for line in lines)


def render_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue()


def _width(text: str) -> int:
    """Display width: CJK characters take two columns in a terminal."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
