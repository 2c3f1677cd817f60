"""The typed view of the interaction content a handler reads: ``interactions_of(content).campaign(id)``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from bot.content.store import Content
from handlers.interactions.content.checkin import CHECKIN
from handlers.interactions.content.coupons import COUPON_POOLS
from handlers.interactions.content.keywords import KEYWORDS
from handlers.interactions.content.lottery import CAMPAIGNS
from handlers.interactions.content.model import Campaign, Checkin, CouponPool, KeywordRule, Referral
from handlers.interactions.content.referral import REFERRAL


@dataclass(frozen=True)
class InteractionsContent:
    checkin: Checkin | None
    campaigns: tuple[Campaign, ...]
    coupon_pools: tuple[CouponPool, ...]
    keyword_rules: tuple[KeywordRule, ...]  # by priority, highest first; equal priorities keep file order
    referral: Referral | None

    def campaign(self, campaign_id: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.id == campaign_id), None)

    def coupon_pool(self, pool_id: str) -> CouponPool | None:
        return next((p for p in self.coupon_pools if p.id == pool_id), None)

    def keyword_rule_for(self, text: str, platform: str, at: time) -> KeywordRule | None:
        """The rule answering ``text`` on ``platform`` ("mp" or "kf") at local time ``at``, if any."""
        return next((r for r in self.keyword_rules if r.applies(text, platform, at)), None)


def _view(content: Content) -> InteractionsContent:
    return InteractionsContent(
        checkin=content.one(CHECKIN),
        campaigns=content.get(CAMPAIGNS),
        coupon_pools=content.get(COUPON_POOLS),
        keyword_rules=tuple(sorted(content.get(KEYWORDS), key=lambda r: -r.priority)),
        referral=content.one(REFERRAL),
    )


def interactions_of(content: Content) -> InteractionsContent:
    return content.memo(_view)
