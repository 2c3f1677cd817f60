"""The SOP content model: drips (per-customer journeys), group posts and the contact budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

from bot.content.model import Platform, Window
from bot.content.schedule import CronSchedule, DatesSchedule, Delay


class TriggerKind(StrEnum):
    FRIEND_ADDED = "friend_added"  # a customer added a staff member (WeCom 联系我 or any add)
    FOLLOWED = "followed"  # a WeChat user followed the Official Account
    JOINED_GROUP = "joined_group"  # a customer joined a WeCom customer group
    TAG_ADDED = "tag_added"  # a tag was put on the customer
    ORDER_PAID = "order_paid"  # the order webhook reported a paid order


class Delivery(StrEnum):
    # docs/platform.md#customer-service-messages
    MP_CUSTOM = "mp_custom"  # Official Account customer-service message, window-bound
    # docs/platform.md#group-send-tasks
    WECOM_TASK_SINGLE = "wecom_task_single"  # add_msg_template chat_type=single, staff confirms
    # docs/platform.md#group-send-tasks
    WECOM_TASK_GROUP = "wecom_task_group"  # add_msg_template chat_type=group, the owner confirms
    APP_TO_OWNER = "app_to_owner"  # an app message to the owner/staff, who posts by hand
    GROUP_ROBOT = "group_robot"  # a group robot webhook, where the group has one (docs/platform.md#group-robots)


DRIP_DELIVERIES = (Delivery.MP_CUSTOM, Delivery.WECOM_TASK_SINGLE, Delivery.APP_TO_OWNER)
GROUP_DELIVERIES = (Delivery.WECOM_TASK_GROUP, Delivery.APP_TO_OWNER, Delivery.GROUP_ROBOT)


class Category(StrEnum):
    """The 3:3:3:1 guideline's four kinds of content (docs/content.md, "The category mix")."""

    MARKETING = "marketing"
    INTERACTION = "interaction"
    CARE = "care"
    DAILY = "daily"


GUIDELINE: dict[Category, int] = {
    Category.MARKETING: 3,
    Category.INTERACTION: 3,
    Category.CARE: 3,
    Category.DAILY: 1,
}


class StopKind(StrEnum):
    PURCHASED = "purchased"  # a paid order arrived (order webhook)
    ADDED_WECOM_FRIEND = "added_wecom_friend"  # the customer added a staff member
    UNFOLLOWED = "unfollowed"  # unfollowed the Official Account
    DELETED_FRIEND = "deleted_friend"  # deleted the staff member (or was deleted)
    REPLIED = "replied"  # wrote to us (OA chat, kf or 1:1)
    TAG = "tag"  # got the tag ``tag:<group/name>``


@dataclass(frozen=True, slots=True)
class StopCondition:
    kind: StopKind
    tag: str | None = None  # "group/name" for StopKind.TAG

    def __str__(self) -> str:
        return f"tag:{self.tag}" if self.tag is not None else self.kind.value


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: TriggerKind
    channels: tuple[str, ...] = ()  # only arrivals through these channel codes (empty: any)
    tag: str | None = None  # for tag_added: "group/name"

    def platforms(self, tag_platforms: tuple[Platform, ...] = ()) -> tuple[Platform, ...]:
        """Where the customer is known when the drip starts (``tag_platforms`` for tag_added)."""
        if self.kind is TriggerKind.FRIEND_ADDED:
            return (Platform.WECOM_FRIEND,)
        if self.kind is TriggerKind.FOLLOWED:
            return (Platform.MP,)
        if self.kind is TriggerKind.JOINED_GROUP:
            return (Platform.WECOM_GROUP,)
        if self.kind is TriggerKind.TAG_ADDED:
            return tag_platforms
        return tuple(Platform)

    def matches(self, kind: TriggerKind, channel: str | None = None, tag: str | None = None) -> bool:
        """Whether an event (its kind, the customer's channel code, the tag just added) starts the drip."""
        if kind is not self.kind:
            return False
        if self.channels and channel not in self.channels:
            return False
        return self.tag is None or self.tag == tag


@dataclass(frozen=True, slots=True)
class DripStep:
    id: str  # stable within the drip (default: the 1-based position), for stats and scheduled rows
    delay: Delay
    message: str
    delivery: Delivery
    category: Category


@dataclass(frozen=True, slots=True)
class Drip:
    id: str
    name: str
    trigger: Trigger
    steps: tuple[DripStep, ...]
    stop_when: tuple[StopCondition, ...]
    then_tags: tuple[str, ...]  # put on the customer after the last step
    then_start: str | None  # another drip id to enrol the customer in after the last step
    enabled: bool
    # Also start for an arrival found late by ``siyu-bot reconcile`` (counted from its discovery).
    late_entry: bool = False


class Anchor(StrEnum):
    GROUP_CREATED = "group_created"
    MEMBER_JOINED = "member_joined"


@dataclass(frozen=True, slots=True)
class RelativeSchedule:
    delay: Delay  # after the group was created or the member joined
    anchor: Anchor

    def fires(self, start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
        """Unknown at content time: depends on when groups are created or members join."""
        return []


Schedule = CronSchedule | DatesSchedule | RelativeSchedule


@dataclass(frozen=True, slots=True)
class Targets:
    """Which customer groups: a group must match every selector given (each: any of its values)."""

    tags: tuple[str, ...] = ()  # group tags, "group/name" from tags.toml
    names: tuple[str, ...] = ()  # glob patterns on the group name (fnmatch, case-sensitive)
    owners: tuple[str, ...] = ()  # group owner userids
    chat_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupPost:
    id: str
    name: str | None
    schedule: Schedule
    targets: Targets
    delivery: Delivery
    category: Category
    message: str
    enabled: bool


class QuotaPolicy(StrEnum):
    """The corp's receive cap on group sends (add_msg_template) per customer / group
    (docs/platform.md#group-send-tasks)."""

    DAYS_IN_MONTH = "days_in_month"  # the current default: as many as the month has days
    SEVEN_PER_WEEK = "7_per_week"
    ONE_PER_DAY = "1_per_day"


QUIET_HOURS = Window(22 * 60, 8 * 60)  # 22:00-08:00


@dataclass(frozen=True, slots=True)
class Budget:
    """One contact budget across all automation (every message spends the customer's patience)."""

    quiet_hours: Window | None = QUIET_HOURS  # configured timezone; None: no quiet hours
    max_marketing_per_day: int = 1  # per customer, across drips and posts
    max_automated_per_day: int = 3  # per customer, every category
    max_automated_per_week: int = 10  # per customer, 7 local days
    missed_after: timedelta = timedelta(minutes=30)  # a fire later than this is marked missed, not sent
    group_send_quota: QuotaPolicy = QuotaPolicy.DAYS_IN_MONTH
