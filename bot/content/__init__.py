"""Operator content: channels, messages, tags, SOP and interactions from reviewed TOML files
(see docs/content.md).

``load_content(dir)`` returns an immutable :class:`Content` or raises :class:`ContentError` with every
problem as (file, key, reason); ``choose_variant`` and ``render`` turn a message into a send. SOP kinds
(drips, group posts, budget) and interaction kinds (check-in, lottery, coupon pools, keywords,
referral) are reached through ``Content`` accessors; their types live in ``bot.content.sop_model`` and
``bot.content.interactions_model``.
"""

from bot.content.check import check_command
from bot.content.interactions_model import (
    Campaign,
    Checkin,
    CouponPool,
    KeywordRule,
    Milestone,
    Prize,
    PrizeKind,
    Referral,
    Reward,
)
from bot.content.kinds import CHANNEL_FILES, DEFAULT_REGISTRY, MESSAGE_FILES, TAG_FILES
from bot.content.loader import content_problems, load_content, read_content
from bot.content.mix import WeekMix, category_mix
from bot.content.model import (
    VARIABLES,
    Attachment,
    Channel,
    ContactWay,
    FileAttachment,
    ImageAttachment,
    JoinWay,
    LinkAttachment,
    Message,
    MiniprogramAttachment,
    Platform,
    TagGroup,
    Variable,
    Variant,
    VideoAttachment,
    Window,
)
from bot.content.problems import ContentError, Problem
from bot.content.registry import Check, Draft, FileKind, Located, Registry, Section
from bot.content.render import Rendered, choose_variant, local_time_of, render
from bot.content.schedule import Delay, ScheduleError, parse_delay
from bot.content.sop_model import (
    Budget,
    Category,
    Delivery,
    Drip,
    DripStep,
    GroupPost,
    StopKind,
    Targets,
    TriggerKind,
)
from bot.content.store import Content

__all__ = [
    "CHANNEL_FILES",
    "DEFAULT_REGISTRY",
    "MESSAGE_FILES",
    "TAG_FILES",
    "VARIABLES",
    "Attachment",
    "Budget",
    "Campaign",
    "Category",
    "Channel",
    "Check",
    "Checkin",
    "ContactWay",
    "Content",
    "ContentError",
    "CouponPool",
    "Delay",
    "Delivery",
    "Draft",
    "Drip",
    "DripStep",
    "FileAttachment",
    "FileKind",
    "GroupPost",
    "ImageAttachment",
    "JoinWay",
    "KeywordRule",
    "LinkAttachment",
    "Located",
    "Message",
    "Milestone",
    "MiniprogramAttachment",
    "Platform",
    "Prize",
    "PrizeKind",
    "Problem",
    "Referral",
    "Registry",
    "Rendered",
    "Reward",
    "ScheduleError",
    "Section",
    "StopKind",
    "TagGroup",
    "Targets",
    "TriggerKind",
    "Variable",
    "Variant",
    "VideoAttachment",
    "WeekMix",
    "Window",
    "category_mix",
    "check_command",
    "choose_variant",
    "content_problems",
    "load_content",
    "local_time_of",
    "parse_delay",
    "read_content",
    "render",
]
