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
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
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
    """Counted by the database (GROUP BY channel): a handful of rows per channel, whatever the customers."""
    rows: dict[str, ChannelStats] = defaultdict(lambda: ChannelStats(""))
    old_enough = now - timedelta(days=7)
    in_period = _period(Touch.occurred_at, since, until)
    eligible = func.sum(case((Touch.occurred_at <= old_enough, 1), else_=0))
    channel = _code(Touch.channel_code)
    adds = select(channel, func.count(), func.count(func.distinct(Touch.customer_id)), eligible).where(
        Touch.action.in_(ADD_ACTIONS), *in_period
    )
    for code, n, unique, old in (await session.execute(adds.group_by(channel))).all():
        st = rows[_label(code)]
        st.adds, st.unique, st.eligible_7d = int(n), int(unique), int(old or 0)
    losses = select(Loss.channel_code, func.count()).where(*_period(Loss.occurred_at, since, until))
    for code, n in (await session.execute(losses.group_by(Loss.channel_code))).all():
        rows[_label(code)].losses = int(n)
    for code, lost in (await _lost_within_7d(session, in_period, old_enough)).items():
        rows[code].retained_7d = -lost
    for st in rows.values():
        st.retained_7d += st.eligible_7d
    await _welcomes(session, rows, since, until)
    marked = select(Touch.channel_code, Touch.action, func.count()).where(
        Touch.action.in_((IMPORTED, RECONCILED)), *in_period
    )
    for code, action, n in (await session.execute(marked.group_by(Touch.channel_code, Touch.action))).all():
        if action == IMPORTED:
            rows[_label(code)].imported = int(n)
        else:
            rows[_label(code)].reconciled = int(n)
    for label, st in rows.items():
        st.code = label
    return dict(rows)


def _period(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    return [*([column >= since] if since is not None else []), *([column < until] if until is not None else [])]


async def _lost_within_7d(
    session: AsyncSession, in_period: list[ColumnElement[bool]], old_enough: datetime
) -> Counter[str]:
    """Per channel: adds at least 7 days old with a loss on the same channel within 7 days of the add
    (only adds that have any later loss come back from the database)."""
    query = (
        select(Touch.id, Touch.channel_code, Touch.occurred_at, Loss.occurred_at)
        .join(
            Loss,
            and_(
                Loss.customer_id == Touch.customer_id,
                _code(Loss.channel_code) == _code(Touch.channel_code),
                Loss.occurred_at >= Touch.occurred_at,
            ),
        )
        .where(Touch.action.in_(ADD_ACTIONS), Touch.occurred_at <= old_enough, *in_period)
    )
    lost: dict[int, str] = {}
    for touch_id, code, added_at, lost_at in (await session.execute(query)).all():
        if lost_at < added_at + timedelta(days=7):
            lost[touch_id] = _label(code)
    return Counter(lost.values())


def _code(column: Any) -> Any:
    """The channel code with '' for none: equal for two unattributed rows, and (on purpose) no index on the
    channel: SQLite without ANALYZE would otherwise walk a whole channel instead of the period or customer."""
    return func.coalesce(column, "")


def _label(code: str | None) -> str:
    return code if code else UNATTRIBUTED


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
    return outcome(welcome.state, welcome.outbox_id, outbox_state)


def outcome(state: str, outbox_id: int | None, outbox_state: str | None) -> str:
    """:func:`welcome_outcome` from the welcome row's columns."""
    own = _ROW_TO_WELCOME.get(state, state)
    return _OUTBOX_TO_WELCOME.get(outbox_state or "", own) if outbox_id else own


async def _welcomes(
    session: AsyncSession, rows: dict[str, ChannelStats], since: datetime | None, until: datetime | None
) -> None:
    queued = case((Welcome.outbox_id.is_(None), 0), else_=1)
    group = (Welcome.channel_code, Welcome.variant_ref, Welcome.state, queued, OutboxCall.state)
    query = (
        select(*group, func.count())
        .outerjoin(OutboxCall, OutboxCall.id == Welcome.outbox_id)
        .where(*_period(Welcome.created_at, since, until))
        .group_by(*group)
    )
    for channel_code, variant_ref, own_state, is_queued, outbox_state, n in (await session.execute(query)).all():
        st = rows[_label(channel_code)]
        state = outcome(own_state, is_queued, outbox_state)
        st.welcomes[state] += int(n)
        if variant_ref and state in ("delivered", "pending"):
            st.variants[variant_ref] += int(n)


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
