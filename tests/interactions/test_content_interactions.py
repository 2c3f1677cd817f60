"""Interaction content (issue 5): check-in, lottery, coupon pools, keyword replies, referral."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from bot.content.model import Platform
from bot.content.templates import fill
from handlers.content import load_content
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import CHECKIN_VARIABLES, ActionKind, MatchKind, PrizeKind
from tests.support.settings import SHIPPED_CONTENT


def test_shipped_checkin() -> None:
    checkin = interactions_of(load_content(SHIPPED_CONTENT)).checkin
    assert checkin is not None and checkin.enabled and checkin.leaderboard_size == 10
    assert [checkin.points_for(n) for n in (1, 2, 3, 6, 7, 30)] == [5, 5, 7, 7, 10, 10]
    seven = checkin.milestone_at(7)
    assert seven is not None and seven.reward.points == 20 and seven.reward.lottery == "unbox" and not seven.once
    thirty = checkin.milestone_at(30)
    assert thirty is not None and thirty.reward.coupon_pool == "checkin_30d" and thirty.once
    assert checkin.milestone_at(8) is None
    text = fill(checkin.replies.success, {"streak": "7", "points": "10", "balance": "62"}, {}, CHECKIN_VARIABLES)
    assert text == "签到成功 ✅ 已连续签到 7 天，本次 +10 积分，当前共 62 积分。"


def test_shipped_lottery_has_ten_prizes_and_a_no_prize_entry() -> None:
    content = load_content(SHIPPED_CONTENT)
    campaign = interactions_of(content).campaign("unbox")
    assert campaign is not None and campaign.name == "开箱抽奖" and campaign.enabled
    assert campaign.total_stock == 10
    assert [p.kind for p in campaign.prizes].count(PrizeKind.NONE) == 1
    none = campaign.prize("none")
    assert none is not None and none.stock is None
    assert (campaign.per_day, campaign.total, campaign.points_cost, campaign.alarm_per_hour) == (1, 3, 0, 5)
    assert campaign.eligibility.must_follow_mp
    assert campaign.starts_at.utcoffset() is not None
    assert campaign.is_open(datetime(2026, 12, 1, tzinfo=UTC))
    assert not campaign.is_open(datetime(2027, 1, 1, tzinfo=UTC))
    assert campaign.replies["lose"].startswith("差一点点")
    assert campaign.replies["win_coupon"] == "恭喜！你在「{campaign}」抽中了 {prize}，券码：{code}"  # the default


def test_shipped_coupon_pools_hold_their_codes() -> None:
    content = load_content(SHIPPED_CONTENT)
    pool = interactions_of(content).coupon_pool("unbox_49_20")
    assert pool is not None and pool.size == 50 and len(set(pool.codes)) == 50
    assert all(code.startswith("SY4920-") for code in pool.codes)
    assert pool.path == "coupon_codes/unbox_49_20.csv"
    assert [p.id for p in interactions_of(content).coupon_pools] == ["unbox_49_20", "checkin_30d"]


def test_shipped_referral() -> None:
    referral = interactions_of(load_content(SHIPPED_CONTENT)).referral
    assert referral is not None and referral.code_platform is Platform.WECOM_FRIEND
    assert (referral.hold_days, referral.require_first_order, referral.max_rewards_per_month) == (7, True, 10)
    assert referral.inviter_reward.points == 100 and referral.inviter_reward.tags == ("互动/老带新达人",)
    assert referral.invitee_reward is not None and referral.invitee_reward.points == 20


def test_keyword_rules_are_ordered_by_priority() -> None:
    rules = interactions_of(load_content(SHIPPED_CONTENT)).keyword_rules
    assert [r.id for r in rules] == ["checkin", "lottery", "gift", "coupons", "human_on_duty", "human_off_duty"]
    assert rules[0].action is ActionKind.CHECKIN and rules[1].campaign == "unbox"
    assert rules[2].match is MatchKind.REGEX and rules[2].regex is not None


@pytest.mark.parametrize(
    ("text", "platform", "at", "rule"),
    [
        ("签到", "mp", time(12), "checkin"),
        ("  签到 ", "kf", time(12), "checkin"),
        ("我要签到", "mp", time(12), None),  # exact
        ("抽奖", "mp", time(3), "lottery"),
        ("礼包", "mp", time(12), "gift"),
        ("礼包", "kf", time(12), None),  # the gift rule is mp only
        ("新人礼包", "mp", time(12), None),  # the regex is anchored
        ("有优惠券吗", "kf", time(12), "coupons"),
        ("转人工", "mp", time(9), "human_on_duty"),
        ("转人工", "mp", time(20, 59), "human_on_duty"),
        ("转人工", "mp", time(21), "human_off_duty"),
        ("你好", "mp", time(12), None),
    ],
)
def test_keyword_rule_for(text: str, platform: str, at: time, rule: str | None) -> None:
    found = interactions_of(load_content(SHIPPED_CONTENT)).keyword_rule_for(text, platform, at)
    assert (found.id if found is not None else None) == rule


def test_exact_and_contains_ignore_case(tmp_path: Path) -> None:
    root = tmp_path / "content"
    shutil.copytree(SHIPPED_CONTENT, root)
    with (root / "keywords.toml").open("a", encoding="utf-8") as f:
        f.write('\n[[keywords]]\nid = "vip"\nmatch = "contains"\npattern = "VIP"\ntext = "会员权益见菜单"\n')
    assert interactions_of(load_content(root)).keyword_rule_for("我是vip吗", "mp", time(12)) is not None
