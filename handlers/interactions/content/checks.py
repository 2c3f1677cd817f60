"""Cross-checks for check-in, lottery, coupon pools, keyword replies and referral."""

from __future__ import annotations

from bot.content.fit import KF_TYPES, KF_WINDOW_MESSAGES, MP_CUSTOM_TYPES, MP_WINDOW_MESSAGES, tag_reason
from bot.content.messages import FALLBACKS, MESSAGES
from bot.content.model import VARIABLES, Message
from bot.content.problems import Reporter
from bot.content.registry import Draft, Located
from bot.content.templates import variables_in
from handlers.growth.content.channels import CHANNELS
from handlers.interactions.content.checkin import CHECKIN
from handlers.interactions.content.coupons import COUPON_POOLS
from handlers.interactions.content.keywords import KEYWORDS
from handlers.interactions.content.lottery import CAMPAIGNS
from handlers.interactions.content.model import ActionKind, Campaign, KeywordRule, MatchKind, PrizeKind, Reward
from handlers.interactions.content.referral import REFERRAL
from handlers.interactions.content.rewards import reward_problems


def _rewards(draft: Draft, report: Reporter, file: str, key: str, reward: Reward) -> None:
    for sub, reason in reward_problems(reward, draft, COUPON_POOLS, CAMPAIGNS):
        report.add(file, f"{key}.{sub}", reason)


def check_reward_refs(draft: Draft, report: Reporter) -> None:
    """Milestone and referral rewards name existing tags, coupon pools and campaigns."""
    for located in draft.get(CHECKIN):
        for i, milestone in enumerate(located.value.milestones):
            _rewards(draft, report, located.file, f"{located.key}.milestones[{i}]", milestone.reward)
    for ref in draft.get(REFERRAL):
        _rewards(draft, report, ref.file, f"{ref.key}.inviter_reward", ref.value.inviter_reward)
        if ref.value.invitee_reward is not None:
            _rewards(draft, report, ref.file, f"{ref.key}.invitee_reward", ref.value.invitee_reward)


def _campaign_refs(located: Located[Campaign], draft: Draft, report: Reporter) -> None:
    campaign, key = located.value, f"{located.key}.eligibility"
    for i, ref in enumerate(campaign.eligibility.tags):
        reason = tag_reason(ref, draft)
        if reason is not None:
            report.add(located.file, f"{key}.tags[{i}]", reason)
    codes = {c.value.code for c in draft.get(CHANNELS)}
    for i, code in enumerate(campaign.eligibility.channels):
        if code not in codes and not draft.may_exist(CHANNELS, code):
            report.add(located.file, f"{key}.channels[{i}]", f"channel {code!r} not found")


def check_campaigns(draft: Draft, report: Reporter) -> None:
    """Eligibility references exist; coupon prizes name a pool holding enough codes for their stock."""
    pools = {p.value.id: p.value for p in draft.get(COUPON_POOLS)}
    needed: dict[str, int] = {}
    for located in draft.get(CAMPAIGNS):
        _campaign_refs(located, draft, report)
        for i, prize in enumerate(located.value.prizes):
            if prize.kind is not PrizeKind.COUPON or prize.pool is None:
                continue
            pool = pools.get(prize.pool)
            key = f"{located.key}.prizes[{i}]"
            if pool is None:
                if not draft.may_exist(COUPON_POOLS, prize.pool):
                    report.add(located.file, f"{key}.pool", f"coupon pool {prize.pool!r} not found")
                continue
            needed[pool.id] = needed.get(pool.id, 0) + (prize.stock or 0)
            if needed[pool.id] > pool.size:
                reason = f"stock {needed[pool.id]} (all coupon prizes of pool {pool.id!r}) > {pool.size} codes"
                report.add(located.file, f"{key}.stock", reason)


def _reply_problem(message: Message, platforms: frozenset[str]) -> str | None:
    """mp: the text is the passive reply, attachments follow as customer-service messages
    (docs/platform.md#passive-replies, #customer-service-messages);
    kf: every part is a kf/send_msg message (docs/platform.md#wecom-kf)."""
    for variant in message.variants:
        parts = len(variant.attachments) + (1 if variant.text else 0)
        for attachment in variant.attachments:
            if "mp" in platforms and attachment.msgtype not in MP_CUSTOM_TYPES:
                return f"a {attachment.msgtype} attachment cannot be sent in Official Account chat"
            if "kf" in platforms and attachment.msgtype not in KF_TYPES:
                return f"a {attachment.msgtype} attachment cannot be sent through 微信客服"
        if "mp" in platforms and len(variant.attachments) > MP_WINDOW_MESSAGES:
            return f"variant {variant.id!r}: at most {MP_WINDOW_MESSAGES} attachments after the passive reply"
        if "kf" in platforms and parts > KF_WINDOW_MESSAGES:
            return f"variant {variant.id!r}: {parts} messages; 微信客服 allows {KF_WINDOW_MESSAGES} per 48 h"
    return None


def _rule_problem(rule: KeywordRule, draft: Draft) -> tuple[str, str] | None:
    if rule.action is ActionKind.CHECKIN and not draft.get(CHECKIN) and draft.complete(CHECKIN):
        return "action", "no [checkin] is configured (checkin.toml)"
    if rule.campaign is not None:
        known = {c.value.id for c in draft.get(CAMPAIGNS)}
        if rule.campaign not in known and not draft.may_exist(CAMPAIGNS, rule.campaign):
            return "action", f"lottery campaign {rule.campaign!r} not found"
    if rule.reply is not None:
        message = next((m.value for m in draft.get(MESSAGES) if m.value.id == rule.reply), None)
        if message is None:
            return None if draft.may_exist(MESSAGES, rule.reply) else ("reply", f"message {rule.reply!r} not found")
        reason = _reply_problem(message, rule.platforms)
        return None if reason is None else ("reply", f"{rule.reply!r}: {reason}")
    if rule.text is not None and draft.complete(FALLBACKS):
        fallbacks = draft.get(FALLBACKS)[0].value if draft.get(FALLBACKS) else {}
        missing = sorted(n for n in variables_in(rule.text) if VARIABLES[n].needs_profile and n not in fallbacks)
        if missing:
            return "text", f"uses {{{missing[0]}}} but [fallbacks] has no text for it"
    return None


def _same_exact(rule: KeywordRule, other: KeywordRule) -> bool:
    both_exact = rule.match is other.match is MatchKind.EXACT
    same_hours = rule.window is None or other.window is None or rule.window.overlaps(other.window)
    same = both_exact and rule.pattern.casefold() == other.pattern.casefold() and same_hours
    return same and bool(rule.platforms & other.platforms) and rule.priority == other.priority


def check_keywords(draft: Draft, report: Reporter) -> None:
    """Replies and actions resolve and fit the platforms; no exact rule is hidden by an identical one."""
    seen: list[KeywordRule] = []
    for located in draft.get(KEYWORDS):
        rule = located.value
        found = _rule_problem(rule, draft)
        if found is not None:
            report.add(located.file, f"{located.key}.{found[0]}", found[1])
        shadow = next((o for o in seen if _same_exact(rule, o)), None)
        if shadow is not None:
            reason = f"rule {shadow.id!r} has the same exact pattern, platform and priority: this one never answers"
            report.add(located.file, f"{located.key}.pattern", reason)
        seen.append(rule)


INTERACTION_CHECKS = (check_reward_refs, check_campaigns, check_keywords)
