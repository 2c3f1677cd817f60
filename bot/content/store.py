""":class:`Content`: the loaded, validated, immutable set of operator content.

Handlers hold one ``Content`` at a time; a reload builds a new one or raises, so a broken file never
replaces a good set. Lookups are by the values callbacks carry (``State``, QR scene, message id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast

from bot.content.budget import BUDGET, DEFAULT_BUDGET
from bot.content.channels import CHANNELS
from bot.content.checkin import CHECKIN
from bot.content.coupons import COUPON_POOLS
from bot.content.drips import DRIPS
from bot.content.group_sop import GROUP_POSTS
from bot.content.interactions_model import Campaign, Checkin, CouponPool, KeywordRule, Referral
from bot.content.keywords import KEYWORDS
from bot.content.lottery import CAMPAIGNS
from bot.content.messages import FALLBACKS, MESSAGES
from bot.content.model import Channel, Message, Platform, TagGroup, media_path
from bot.content.referral import REFERRAL
from bot.content.registry import Section
from bot.content.sop_model import Budget, Drip, GroupPost, TriggerKind
from bot.content.tags import TAG_GROUPS

T = TypeVar("T")


@dataclass(frozen=True)
class Content:
    """Everything under the content directory. ``get(SECTION)`` reaches any registered kind."""

    root: Path
    sections: Mapping[str, tuple[Any, ...]]
    files: tuple[str, ...] = ()

    def get(self, section: Section[T]) -> tuple[T, ...]:
        return cast(tuple[T, ...], self.sections.get(section.key, ()))

    def one(self, section: Section[T]) -> T | None:
        """The value of a ``single`` section (a table defined in at most one file)."""
        found = self.get(section)
        return found[0] if found else None

    @property
    def channels(self) -> tuple[Channel, ...]:
        return self.get(CHANNELS)

    @property
    def messages(self) -> tuple[Message, ...]:
        return self.get(MESSAGES)

    @property
    def tag_groups(self) -> tuple[TagGroup, ...]:
        return self.get(TAG_GROUPS)

    @property
    def fallbacks(self) -> Mapping[str, str]:
        return self.one(FALLBACKS) or MappingProxyType({})

    @property
    def tag_count(self) -> int:
        return sum(len(g.tags) for g in self.tag_groups)

    @cached_property
    def _by_code(self) -> Mapping[str, Channel]:
        return {c.code: c for c in self.channels}

    @cached_property
    def _by_state(self) -> Mapping[str, Channel]:
        return {c.attribution_key: c for c in self.channels if c.platform.is_wecom}

    @cached_property
    def _by_scene(self) -> Mapping[str, Channel]:
        return {c.attribution_key: c for c in self.channels if c.platform is Platform.MP}

    @cached_property
    def _by_message_id(self) -> Mapping[str, Message]:
        return {m.id: m for m in self.messages}

    def channel(self, code: str) -> Channel | None:
        return self._by_code.get(code)

    def channel_for_state(self, state: str) -> Channel | None:
        """The WeCom channel (联系我 or 加入群聊) whose ``state`` came back in a callback."""
        return self._by_state.get(state)

    def channel_for_scene(self, scene_str: str) -> Channel | None:
        """The Official Account channel of a QR scene (``qrscene_`` prefix already removed)."""
        return self._by_scene.get(scene_str)

    def default_channel(self, platform: Platform) -> Channel | None:
        """The default channel of ``platform``, else any default channel (unattributed arrivals)."""
        defaults = [c for c in self.channels if c.default]
        return next((c for c in defaults if c.platform is platform), defaults[0] if defaults else None)

    def message(self, message_id: str) -> Message | None:
        return self._by_message_id.get(message_id)

    def welcome_for(self, channel: Channel) -> Message | None:
        return None if channel.welcome is None else self.message(channel.welcome)

    def media_paths(self) -> frozenset[str]:
        """Content-relative files that must be uploaded for their media_id (sync keeps them current)."""
        return frozenset(
            path
            for m in self.messages
            for v in m.variants
            for a in v.attachments
            if (path := media_path(a)) is not None
        )

    # SOP engine (issue 4) -------------------------------------------------------------------------------

    @property
    def drips(self) -> tuple[Drip, ...]:
        return self.get(DRIPS)

    def drip(self, drip_id: str) -> Drip | None:
        return next((d for d in self.drips if d.id == drip_id), None)

    def drips_for(self, kind: TriggerKind, channel: str | None = None, tag: str | None = None) -> tuple[Drip, ...]:
        """Enabled drips an event starts (its kind, the customer's channel code, the tag just added)."""
        return tuple(d for d in self.drips if d.enabled and d.trigger.matches(kind, channel, tag))

    @property
    def group_posts(self) -> tuple[GroupPost, ...]:
        return self.get(GROUP_POSTS)

    @property
    def budget(self) -> Budget:
        """``[budget]`` from budget.toml, or the defaults when there is none."""
        return self.one(BUDGET) or DEFAULT_BUDGET

    # Interactions (issue 5) -----------------------------------------------------------------------------

    @property
    def checkin(self) -> Checkin | None:
        return self.one(CHECKIN)

    @property
    def campaigns(self) -> tuple[Campaign, ...]:
        return self.get(CAMPAIGNS)

    def campaign(self, campaign_id: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.id == campaign_id), None)

    @property
    def coupon_pools(self) -> tuple[CouponPool, ...]:
        return self.get(COUPON_POOLS)

    def coupon_pool(self, pool_id: str) -> CouponPool | None:
        return next((p for p in self.coupon_pools if p.id == pool_id), None)

    @cached_property
    def keyword_rules(self) -> tuple[KeywordRule, ...]:
        """By priority, highest first; equal priorities keep file order."""
        return tuple(sorted(self.get(KEYWORDS), key=lambda r: -r.priority))

    def keyword_rule_for(self, text: str, platform: str, at: time) -> KeywordRule | None:
        """The rule answering ``text`` on ``platform`` ("mp" or "kf") at local time ``at``, if any."""
        return next((r for r in self.keyword_rules if r.applies(text, platform, at)), None)

    @property
    def referral(self) -> Referral | None:
        return self.one(REFERRAL)
