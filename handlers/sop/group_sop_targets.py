"""Which groups a post goes to, and which of them the per-group budget lets it reach.

Targets resolve against the groups we know (``group_chats`` rows not dismissed, kept current from
``groupchat/get``): a group must match every selector given, each by any of its values — tags (from
``[group_tags]``), fnmatch name patterns, owners, chat ids.

The per-group budget reads the shared contact ledger (``contact_ledger`` rows with a ``chat_id``):

* quiet hours (configured timezone) — nothing is pushed to owners or groups at night;
* the platform's receive cap on group-send tasks per group
  (docs/platform.md#group-send-tasks: "days in the month" per month by
  default, or 7 per week / 1 per day as the corp admin chose) — counted from tasks we created, which is
  conservative: a task the owner never confirms still spent its slot here;
* at most ``max_marketing_per_day`` marketing posts per group per local day.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from fnmatch import fnmatchcase

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.growth.tables import GroupChat
from handlers.sop.content.group_tags import GroupTags
from handlers.sop.content.model import Budget, Category, Delivery, QuotaPolicy, Targets
from handlers.sop.tables import ContactLedger


@dataclass(frozen=True, slots=True)
class KnownGroup:
    chat_id: str
    name: str
    owner: str | None


async def known_groups(session: AsyncSession) -> list[KnownGroup]:
    rows = await session.execute(
        select(GroupChat.chat_id, GroupChat.name, GroupChat.owner)
        .where(GroupChat.dismissed_at.is_(None))
        .order_by(GroupChat.chat_id)
    )
    return [KnownGroup(chat_id, name or "", owner) for chat_id, name, owner in rows.all()]


def matches(group: KnownGroup, targets: Targets, tags: GroupTags) -> bool:
    if targets.chat_ids and group.chat_id not in targets.chat_ids:
        return False
    if targets.owners and group.owner not in targets.owners:
        return False
    if targets.names and not any(fnmatchcase(group.name, p) for p in targets.names):
        return False
    return not targets.tags or bool(tags.tags_of(group.chat_id, group.name) & set(targets.tags))


def select_groups(groups: Iterable[KnownGroup], targets: Targets, tags: GroupTags) -> list[KnownGroup]:
    return [g for g in groups if matches(g, targets, tags)]


def by_owner(groups: Iterable[KnownGroup]) -> dict[str, list[str]]:
    """``{owner: [chat_id, …]}`` sorted; groups without a known owner cannot get a group-send task."""
    out: dict[str, list[str]] = {}
    for group in groups:
        if group.owner:
            out.setdefault(group.owner, []).append(group.chat_id)
    return {owner: sorted(chats) for owner, chats in sorted(out.items())}


def in_quiet_hours(budget: Budget, at: datetime, tz: tzinfo) -> bool:
    return budget.quiet_hours is not None and budget.quiet_hours.contains(at.astimezone(tz).time())


def quota_period(policy: QuotaPolicy, at: datetime, tz: tzinfo) -> tuple[datetime, int]:
    """The start of the receive-cap period containing ``at`` (local) and the cap in it
    (docs/platform.md#group-send-tasks)."""
    local = at.astimezone(tz)
    day = datetime.combine(local.date(), time(0), tzinfo=tz)
    if policy is QuotaPolicy.ONE_PER_DAY:
        return day, 1
    if policy is QuotaPolicy.SEVEN_PER_WEEK:
        return day - timedelta(days=local.weekday()), 7
    return day.replace(day=1), calendar.monthrange(local.year, local.month)[1]


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: list[str]
    skipped: dict[str, str]  # chat_id → reason


async def group_budget(
    session: AsyncSession,
    chat_ids: Sequence[str],
    *,
    budget: Budget,
    delivery: Delivery,
    category: Category,
    at: datetime,
    tz: tzinfo,
) -> Verdict:
    """Which of ``chat_ids`` may receive this post at ``at``; the others with the reason."""
    if in_quiet_hours(budget, at, tz):
        window = budget.quiet_hours
        assert window is not None
        reason = f"quiet hours {_hhmm(window.start)}-{_hhmm(window.end)}"
        return Verdict([], dict.fromkeys(chat_ids, reason))
    period_start, cap = quota_period(budget.group_send_quota, at, tz)
    day_start = datetime.combine(at.astimezone(tz).date(), time(0), tzinfo=tz)
    rows = (
        await session.execute(
            select(ContactLedger.chat_id, ContactLedger.at, ContactLedger.category, ContactLedger.delivery).where(
                ContactLedger.chat_id.in_(list(chat_ids)),
                ContactLedger.outcome == "sent",
                ContactLedger.at >= min(period_start, day_start),
            )
        )
    ).all()
    tasks = Counter(c for c, when, _, d in rows if d == Delivery.WECOM_TASK_GROUP and when >= period_start)
    marketing = Counter(c for c, when, cat, _ in rows if cat == Category.MARKETING and when >= day_start)
    allowed, skipped = [], {}
    for chat_id in chat_ids:
        if delivery is Delivery.WECOM_TASK_GROUP and tasks[chat_id] >= cap:
            skipped[chat_id] = f"group-send quota reached ({cap} per {budget.group_send_quota.value})"
        elif category is Category.MARKETING and marketing[chat_id] >= budget.max_marketing_per_day:
            skipped[chat_id] = f"marketing cap reached ({budget.max_marketing_per_day} per day)"
        else:
            allowed.append(chat_id)
    return Verdict(allowed, skipped)
