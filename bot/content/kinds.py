"""The file kinds siyu-bot ships with. Later features extend :data:`DEFAULT_REGISTRY`."""

from __future__ import annotations

from bot.content.budget import BUDGET
from bot.content.channels import CHANNELS
from bot.content.checkin import CHECKIN
from bot.content.checks import ALL_CHECKS
from bot.content.coupons import COUPON_POOLS, check_pool_codes
from bot.content.drips import DRIPS
from bot.content.group_sop import GROUP_POSTS
from bot.content.group_tags import GROUP_TAGS
from bot.content.interaction_checks import INTERACTION_CHECKS
from bot.content.keywords import KEYWORDS
from bot.content.lottery import CAMPAIGNS
from bot.content.messages import FALLBACKS, MESSAGES
from bot.content.referral import REFERRAL, check_referral_prefix
from bot.content.registry import FileKind, Registry
from bot.content.sop_checks import SOP_CHECKS
from bot.content.tags import TAG_GROUPS, check_tag_limits

CHANNEL_FILES = FileKind("channels", (CHANNELS,))
MESSAGE_FILES = FileKind("messages", (MESSAGES, FALLBACKS))
TAG_FILES = FileKind("tags", (TAG_GROUPS,))

# SOP engine (issue 4)
DRIP_FILES = FileKind("drips", (DRIPS,))
GROUP_SOP_FILES = FileKind("group_sop", (GROUP_POSTS, GROUP_TAGS))
BUDGET_FILES = FileKind("budget", (BUDGET,))

# Interactions (issue 5)
CHECKIN_FILES = FileKind("checkin", (CHECKIN,))
LOTTERY_FILES = FileKind("lottery", (CAMPAIGNS,))
COUPON_FILES = FileKind("coupons", (COUPON_POOLS,))
KEYWORD_FILES = FileKind("keywords", (KEYWORDS,))
REFERRAL_FILES = FileKind("referral", (REFERRAL,))

DEFAULT_REGISTRY = (
    Registry()
    .with_kind(CHANNEL_FILES)
    .with_kind(MESSAGE_FILES)
    .with_kind(TAG_FILES, check_tag_limits)
    .with_checks(*ALL_CHECKS)
    .with_kind(DRIP_FILES)
    .with_kind(GROUP_SOP_FILES)
    .with_kind(BUDGET_FILES)
    .with_checks(*SOP_CHECKS)
    .with_kind(CHECKIN_FILES)
    .with_kind(LOTTERY_FILES)
    .with_kind(COUPON_FILES, check_pool_codes)
    .with_kind(KEYWORD_FILES)
    .with_kind(REFERRAL_FILES, check_referral_prefix)
    .with_checks(*INTERACTION_CHECKS)
    .with_kind(__import__("handlers.staff.content", fromlist=["STAFF_FILES"]).STAFF_FILES)  # lead: rewire
)
