"""The category mix of the coming group posts against the 3:3:3:1 guideline (docs/content.md, "The category mix").

Posts are counted once per fire (not per target group: groups are known only at run time); posts
scheduled relative to a group's creation or a member's join are listed apart, since their dates depend
on the groups. A week is 7 local days from the start date; the last one may be shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta, tzinfo

from bot.content.schedule import local_midnight
from bot.content.store import Content
from handlers.sop.content.model import GUIDELINE, Category, Delivery, QuotaPolicy, RelativeSchedule
from handlers.sop.content.view import sop_of

MARKETING_WARN_SHARE = 0.5
_ORDER = tuple(GUIDELINE)


@dataclass(frozen=True, slots=True)
class WeekMix:
    start: date
    days: int
    counts: dict[Category, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def marketing_share(self) -> float:
        return self.counts[Category.MARKETING] / self.total if self.total else 0.0

    @property
    def mostly_marketing(self) -> bool:
        return self.marketing_share > MARKETING_WARN_SHARE

    def ratio(self) -> str:
        return " : ".join(str(self.counts[c]) for c in _ORDER)


def category_mix(content: Content, start: date, days: int = 30, *, tz: tzinfo) -> list[WeekMix]:
    """Per-week post counts by category for ``days`` local days from ``start`` (enabled posts only)."""
    weeks = [WeekMix(start + timedelta(days=d), min(7, days - d), {c: 0 for c in _ORDER}) for d in range(0, days, 7)]
    begin, end = local_midnight(start, tz), local_midnight(start + timedelta(days=days), tz)
    for post in sop_of(content).group_posts:
        if not post.enabled:
            continue
        for fire in post.schedule.fires(begin, end, tz):
            index = (fire.astimezone(tz).date() - start).days // 7
            weeks[index].counts[post.category] += 1
    return weeks


def _monthly_cap(policy: QuotaPolicy, days: int) -> int:
    """Group sends one group may receive in ``days`` days under the corp's receive cap
    (docs/platform.md#group-send-tasks)."""
    if policy is QuotaPolicy.SEVEN_PER_WEEK:
        return 7 * -(-days // 7)
    return days


def _quota_warnings(content: Content, start: date, days: int, tz: tzinfo) -> list[str]:
    begin, end = local_midnight(start, tz), local_midnight(start + timedelta(days=days), tz)
    cap = _monthly_cap(sop_of(content).budget.group_send_quota, days)
    lines: list[str] = []
    total = 0
    for post in sop_of(content).group_posts:
        if post.enabled and post.delivery is Delivery.WECOM_TASK_GROUP:
            fires = len(post.schedule.fires(begin, end, tz))
            total += fires
            if fires > cap:
                lines.append(f"warning: group post {post.id!r} fires {fires} times; a group receives at most {cap}")
    if total > cap:
        lines.append(
            f"warning: {total} wecom_task_group posts in {days} days; a group targeted by all of them would pass "
            f"the group-send quota ({cap}, policy {sop_of(content).budget.group_send_quota.value})"
        )
    return lines


def mix_report(content: Content, start: date, tz: tzinfo, days: int = 30) -> list[str]:
    """The lines ``content check`` prints after the OK line. Warnings never fail the check."""
    if not sop_of(content).group_posts:
        return []
    weeks = category_mix(content, start, days, tz=tz)
    totals = {c: sum(w.counts[c] for w in weeks) for c in _ORDER}
    names = " : ".join(c.value for c in _ORDER)
    guide = ":".join(str(GUIDELINE[c]) for c in _ORDER)
    lines = [
        f"Group posts, {days} days from {start.isoformat()} ({tz}): {names}",
        f"  total {' : '.join(str(totals[c]) for c in _ORDER)} (guideline {guide})",
    ]
    for week in weeks:
        lines.append(f"  {week.start.isoformat()} +{week.days}d: {week.ratio()}")
    for week in weeks:
        if week.mostly_marketing:
            share = f"{week.counts[Category.MARKETING]} of {week.total}"
            lines.append(f"warning: week of {week.start.isoformat()}: {share} posts are marketing (more than half)")
    relative = [p.id for p in sop_of(content).group_posts if p.enabled and isinstance(p.schedule, RelativeSchedule)]
    if relative:
        lines.append(f"  not counted (relative to each group or member): {', '.join(relative)}")
    return lines + _quota_warnings(content, start, days, tz)
