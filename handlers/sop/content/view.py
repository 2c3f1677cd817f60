"""The typed view of the SOP content a handler reads: ``sop_of(content).drips`` (computed once per load)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.content.store import Content
from handlers.sop.content.budget import BUDGET, DEFAULT_BUDGET
from handlers.sop.content.drips import DRIPS
from handlers.sop.content.group_sop import GROUP_POSTS
from handlers.sop.content.model import Budget, Drip, GroupPost, TriggerKind


@dataclass(frozen=True)
class SopContent:
    """Drips, group posts and the budget of one loaded content set."""

    drips: tuple[Drip, ...]
    group_posts: tuple[GroupPost, ...]
    budget: Budget  # ``[budget]`` from budget.toml, or the defaults when there is none

    def drip(self, drip_id: str) -> Drip | None:
        return next((d for d in self.drips if d.id == drip_id), None)

    def drips_for(self, kind: TriggerKind, channel: str | None = None, tag: str | None = None) -> tuple[Drip, ...]:
        """Enabled drips an event starts (its kind, the customer's channel code, the tag just added)."""
        return tuple(d for d in self.drips if d.enabled and d.trigger.matches(kind, channel, tag))


def _view(content: Content) -> SopContent:
    return SopContent(content.get(DRIPS), content.get(GROUP_POSTS), content.one(BUDGET) or DEFAULT_BUDGET)


def sop_of(content: Content) -> SopContent:
    return content.memo(_view)
