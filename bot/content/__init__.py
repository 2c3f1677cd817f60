"""Operator content machinery: messages and tags from reviewed TOML files (see docs/content.md),
and the registry through which features add their own kinds (channels, drips, lottery, …:
``Feature.content``).

``load_content(dir, registry)`` returns an immutable :class:`Content` or raises :class:`ContentError` with
every problem as (file, key, reason); ``choose_variant`` and ``render`` turn a message into a send. A
feature reads its own kinds through its typed view (``handlers/sop/content``: ``sop_of(content).drips``).
"""

from bot.content.check import check_command
from bot.content.kinds import BASE_REGISTRY, MESSAGE_FILES, TAG_FILES
from bot.content.loader import content_problems, load_content, read_content
from bot.content.model import (
    VARIABLES,
    Attachment,
    FileAttachment,
    ImageAttachment,
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
from bot.content.store import Content

__all__ = [
    "BASE_REGISTRY",
    "MESSAGE_FILES",
    "TAG_FILES",
    "VARIABLES",
    "Attachment",
    "Check",
    "Content",
    "ContentError",
    "Delay",
    "Draft",
    "FileAttachment",
    "FileKind",
    "ImageAttachment",
    "LinkAttachment",
    "Located",
    "Message",
    "MiniprogramAttachment",
    "Platform",
    "Problem",
    "Registry",
    "Rendered",
    "ScheduleError",
    "Section",
    "TagGroup",
    "Variable",
    "Variant",
    "VideoAttachment",
    "Window",
    "check_command",
    "choose_variant",
    "content_problems",
    "load_content",
    "local_time_of",
    "parse_delay",
    "read_content",
    "render",
]
