"""The interactions feature's content: check-in, lottery campaigns, coupon pools, keyword rules and
referral — their models, parsers, cross-checks and the typed view handlers read.

``CONTENT`` is what the feature adds to the kernel's content registry; ``interactions_of(content)`` is the view.
"""

from __future__ import annotations

from datetime import date, tzinfo

from bot.content.registry import FileKind, Registry
from bot.content.store import Content
from handlers.interactions.content.checkin import CHECKIN
from handlers.interactions.content.checks import INTERACTION_CHECKS
from handlers.interactions.content.coupons import COUPON_POOLS, check_pool_codes
from handlers.interactions.content.keywords import KEYWORDS
from handlers.interactions.content.lottery import CAMPAIGNS
from handlers.interactions.content.referral import REFERRAL, check_referral_prefix
from handlers.interactions.content.view import InteractionsContent, interactions_of

__all__ = ["CONTENT", "InteractionsContent", "interactions_of", "interactions_report"]

CHECKIN_FILES = FileKind("checkin", (CHECKIN,))
LOTTERY_FILES = FileKind("lottery", (CAMPAIGNS,))
COUPON_FILES = FileKind("coupons", (COUPON_POOLS,))
KEYWORD_FILES = FileKind("keywords", (KEYWORDS,))
REFERRAL_FILES = FileKind("referral", (REFERRAL,))

CONTENT = (
    Registry()
    .with_kind(CHECKIN_FILES)
    .with_kind(LOTTERY_FILES)
    .with_kind(COUPON_FILES, check_pool_codes)
    .with_kind(KEYWORD_FILES)
    .with_kind(REFERRAL_FILES, check_referral_prefix)
    .with_checks(*INTERACTION_CHECKS)
)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def interactions_report(content: Content, start: date, tz: tzinfo) -> list[str]:
    """``content check``'s interactions line, when any interaction is configured."""
    view = interactions_of(content)
    if (
        not (view.campaigns or view.coupon_pools or view.keyword_rules)
        and view.checkin is None
        and view.referral is None
    ):
        return []
    checkin = "on" if view.checkin is not None and view.checkin.enabled else "off"
    referral = "on" if view.referral is not None and view.referral.enabled else "off"
    parts = [
        _plural(len(view.campaigns), "lottery campaign"),
        _plural(len(view.coupon_pools), "coupon pool"),
        _plural(len(view.keyword_rules), "keyword rule"),
        f"check-in {checkin}",
        f"referral {referral}",
    ]
    return ["interactions: " + "; ".join(parts)]
