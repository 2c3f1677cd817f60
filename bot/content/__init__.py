"""Operator content: channels, messages and tags from reviewed TOML files (see docs/content.md).

``load_content(dir)`` returns an immutable :class:`Content` or raises :class:`ContentError` with every
problem as (file, key, reason); ``choose_variant`` and ``render`` turn a message into a send.
"""

from bot.content.check import check_command
from bot.content.kinds import CHANNEL_FILES, DEFAULT_REGISTRY, MESSAGE_FILES, TAG_FILES
from bot.content.loader import content_problems, load_content, read_content
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
from bot.content.store import Content

__all__ = [
    "CHANNEL_FILES",
    "DEFAULT_REGISTRY",
    "MESSAGE_FILES",
    "TAG_FILES",
    "VARIABLES",
    "Attachment",
    "Channel",
    "Check",
    "ContactWay",
    "Content",
    "ContentError",
    "Draft",
    "FileAttachment",
    "FileKind",
    "ImageAttachment",
    "JoinWay",
    "LinkAttachment",
    "Located",
    "Message",
    "MiniprogramAttachment",
    "Platform",
    "Problem",
    "Registry",
    "Rendered",
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
    "read_content",
    "render",
]
