"""``[referral]`` in ``referral.toml``: invite-a-friend (老带新) with anti-fraud holds and caps.

Each customer can get a personal invite code: a 联系我 ``state`` (``code_platform = "wecom_friend"``,
≤ 30 characters, docs/platform.md#contact-me-codes) or an Official Account QR ``scene_str`` (``"mp"``, ≤ 64,
docs/platform.md#parametric-qr-codes) made of
``code_prefix`` and a short customer code. A new customer arriving through it credits the inviter; the
reward is released only if the invitee is genuinely new, is still a friend/follower after
``hold_days``, and (with ``require_first_order``) has paid a first order. Deleting within the hold
revokes the credit. An inviter gets at most ``max_rewards_per_month`` rewards per local month.
"""

from __future__ import annotations

import re

from bot.content.fields import choice
from bot.content.model import Platform
from bot.content.node import Node
from bot.content.problems import Reporter
from bot.content.registry import Draft, Section
from handlers.growth.content.channels import CHANNELS
from handlers.interactions.content.model import Referral, Reward
from handlers.interactions.content.rewards import parse_reward

PREFIX = re.compile(r"[A-Za-z0-9_-]{1,10}")
PREFIX_HINT = "use 1-10 letters, digits, '_' or '-' (the rest of the 30-character state is the customer's code)"
MAX_HOLD_DAYS = 90


def _reward(node: Node, name: str, *, required: bool) -> Reward | None:
    table = node.table(name)
    if table is None:
        if required and name not in node.data:
            node.problem(name, "is required: points, tags, coupon_pool and/or lottery")
        return None
    reward = parse_reward(table)
    table.finish()
    return reward


def parse_referral(node: Node) -> Referral | None:
    before = len(node.report.problems)
    enabled = node.flag("enabled", True)
    platform = choice(node, "code_platform", Platform, allowed=(Platform.WECOM_FRIEND, Platform.MP))
    prefix = node.text("code_prefix", pattern=PREFIX, pattern_hint=PREFIX_HINT) or "ref_"
    hold = node.integer("hold_days", required=True, minimum=1)
    first_order = node.flag("require_first_order", True)
    cap = node.integer("max_rewards_per_month", required=True, minimum=1)
    inviter = _reward(node, "inviter_reward", required=True)
    invitee = _reward(node, "invitee_reward", required=False)
    node.finish()
    if hold is not None and hold > MAX_HOLD_DAYS:
        node.problem("hold_days", f"at most {MAX_HOLD_DAYS}")
    if platform is None or hold is None or cap is None or inviter is None:
        return None
    if len(node.report.problems) > before:
        return None
    return Referral(enabled, platform, prefix, hold, first_order, cap, inviter, invitee)


REFERRAL: Section[Referral] = Section("referral", parse_referral, single=True)


def check_referral_prefix(draft: Draft, report: Reporter) -> None:
    """Personal codes must never be mistaken for a channel's state or scene."""
    for located in draft.get(REFERRAL):
        referral = located.value
        for channel in draft.get(CHANNELS):
            same_kind = channel.value.platform.is_wecom == referral.code_platform.is_wecom
            if same_kind and channel.value.attribution_key.startswith(referral.code_prefix):
                reason = (
                    f"channel {channel.value.code!r} ({channel.value.attribution_key!r}) starts with "
                    f"{referral.code_prefix!r}: its arrivals would look like referrals"
                )
                report.add(located.file, f"{located.key}.code_prefix", reason)
