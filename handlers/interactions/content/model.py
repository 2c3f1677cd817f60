"""The interaction content model: check-in, lottery campaigns, coupon pools, keyword rules, referral."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum

from bot.content.model import Platform, Variable, Window


@dataclass(frozen=True, slots=True)
class Reward:
    """What a milestone or a referral gives; at least one part is set."""

    points: int = 0
    tags: tuple[str, ...] = ()  # "group/name"
    coupon_pool: str | None = None  # one code from this pool
    lottery: str | None = None  # one draw (ticket) in this campaign, without its points cost


CHECKIN_VARIABLES: Mapping[str, Variable] = {
    v.name: v
    for v in (
        Variable("streak", "consecutive local days checked in, today included", needs_profile=False),
        Variable("points", "points earned by this check-in (daily points + streak bonus)", needs_profile=False),
        Variable("balance", "the points balance after this check-in", needs_profile=False),
    )
}


@dataclass(frozen=True, slots=True)
class StreakBonus:
    from_streak: int  # from this many consecutive days on …
    extra_points: int  # … each check-in earns this much more (the highest applicable bonus)


@dataclass(frozen=True, slots=True)
class Milestone:
    streak: int  # reached when the streak becomes exactly this long
    reward: Reward
    text: str | None  # appended to the success reply (CHECKIN_VARIABLES)
    once: bool  # only the first time per customer (else each time a streak reaches it)


@dataclass(frozen=True, slots=True)
class CheckinReplies:
    success: str
    already: str  # second check-in the same local day: nothing changes
    streak_broken: str  # checked in, but yesterday was missed: the streak restarts at 1


@dataclass(frozen=True, slots=True)
class Checkin:
    enabled: bool
    points_per_day: int
    bonuses: tuple[StreakBonus, ...]  # sorted by from_streak
    milestones: tuple[Milestone, ...]  # sorted by streak
    replies: CheckinReplies
    leaderboard_size: int

    def points_for(self, streak: int) -> int:
        """Points for a check-in that makes the streak ``streak`` long."""
        extra = max((b.extra_points for b in self.bonuses if streak >= b.from_streak), default=0)
        return self.points_per_day + extra

    def milestone_at(self, streak: int) -> Milestone | None:
        return next((m for m in self.milestones if m.streak == streak), None)


class PrizeKind(StrEnum):
    COUPON = "coupon"  # one code from a coupon pool
    POINTS = "points"
    PHYSICAL = "physical"  # shipped by staff (the winner is followed up by hand)
    NONE = "none"  # the "no prize" outcome


@dataclass(frozen=True, slots=True)
class Prize:
    id: str
    name: str
    kind: PrizeKind
    weight: int  # relative chance per draw
    stock: int | None  # None only for kind none (unlimited)
    pool: str | None = None  # kind coupon
    points: int | None = None  # kind points


@dataclass(frozen=True, slots=True)
class Eligibility:
    tags: tuple[str, ...] = ()  # the customer has at least one of them (empty: anyone)
    must_follow_mp: bool = False
    channels: tuple[str, ...] = ()  # attributed to one of these channel codes (empty: any)


LOTTERY_VARIABLES: Mapping[str, Variable] = {
    v.name: v
    for v in (
        Variable("campaign", "the campaign's name", needs_profile=False),
        Variable("prize", "the prize's name", needs_profile=False),
        Variable("code", "the coupon code won (coupon prizes)", needs_profile=False),
    )
}

LOTTERY_REPLIES: Mapping[str, str] = {
    "win": "恭喜！你在「{campaign}」抽中了 {prize} 🎉",
    "win_coupon": "恭喜！你在「{campaign}」抽中了 {prize}，券码：{code}",
    "lose": "差一点点～这次没有抽中，明天再来试试手气！",
    "not_open": "「{campaign}」还没开始或已经结束啦，关注后续活动哦。",
    "not_eligible": "这个活动仅限指定会员参加，先去看看其他福利吧～",
    "limit_reached": "今天的抽奖次数用完啦，明天再来！",
    "no_points": "积分不够这次抽奖，签到可以攒积分哦。",
}


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    enabled: bool  # the kill switch: false stops draws at once
    starts_at: datetime  # timezone-aware
    ends_at: datetime
    eligibility: Eligibility
    per_day: int | None  # draws per customer per local day
    total: int | None  # draws per customer over the campaign
    points_cost: int
    prizes: tuple[Prize, ...]
    alarm_per_hour: int | None  # alert when more prizes than this are issued in an hour
    replies: Mapping[str, str]  # LOTTERY_REPLIES keys, operator texts over the defaults

    def is_open(self, now: datetime) -> bool:
        return self.enabled and self.starts_at <= now < self.ends_at

    @property
    def total_stock(self) -> int:
        return sum(p.stock or 0 for p in self.prizes if p.kind is not PrizeKind.NONE)

    def prize(self, prize_id: str) -> Prize | None:
        return next((p for p in self.prizes if p.id == prize_id), None)


@dataclass(frozen=True, slots=True)
class CouponPool:
    id: str
    name: str
    path: str  # CSV under the content directory with a ``code`` column
    codes: tuple[str, ...] = field(default=(), repr=False)  # in file order, for the database import

    @property
    def size(self) -> int:
        return len(self.codes)


class MatchKind(StrEnum):
    EXACT = "exact"
    CONTAINS = "contains"
    REGEX = "regex"


class ActionKind(StrEnum):
    CHECKIN = "checkin"
    LOTTERY = "lottery"  # written "lottery:<campaign id>"


@dataclass(frozen=True, slots=True)
class KeywordRule:
    id: str
    match: MatchKind
    pattern: str
    priority: int  # higher first; equal priority: file order
    platforms: frozenset[str]  # "mp" (Official Account chat), "kf" (微信客服)
    window: Window | None  # only inside these hours (configured timezone)
    reply: str | None  # a message id
    text: str | None  # or an inline text
    action: ActionKind | None  # or an action
    campaign: str | None = None  # for ActionKind.LOTTERY
    regex: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        """Exact and contains compare the trimmed text case-insensitively; a regex searches as written."""
        if self.regex is not None:
            return self.regex.search(text) is not None
        said = text.strip().casefold()
        needle = self.pattern.casefold()
        return said == needle if self.match is MatchKind.EXACT else needle in said

    def applies(self, text: str, platform: str, at: time) -> bool:
        in_hours = self.window is None or self.window.contains(at)
        return platform in self.platforms and in_hours and self.matches(text)


@dataclass(frozen=True, slots=True)
class Referral:
    enabled: bool
    code_platform: Platform  # wecom_friend: a personal 联系我 state; mp: a personal QR scene_str
    code_prefix: str  # personal codes are <prefix><customer code>; no channel may start with it
    hold_days: int  # the invitee must still be a friend/follower after this many days
    require_first_order: bool  # and must have paid a first order
    max_rewards_per_month: int  # per inviter, local calendar month
    inviter_reward: Reward
    invitee_reward: Reward | None
