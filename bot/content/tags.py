"""``[[tag_groups]]``: WeCom corp tag groups, optionally mirrored as Official Account tags.

Limits (docs/platform.md#corp-tags): group and tag names ≤ 30 characters, ≤ 3000 corp tags per corp. Official
Account tags are flat (no groups), so names synced there must be unique across groups; an account
holds at most 100 tags. Channels refer to a tag as ``"group/tag"`` (``"渠道/包裹卡"``).
"""

from __future__ import annotations

from bot.content.model import TagGroup
from bot.content.node import Node
from bot.content.problems import Reporter
from bot.content.registry import Draft, Located, Section

MAX_NAME = 30
MAX_WECOM_TAGS = 3000
MAX_MP_TAGS = 100
_PLATFORMS = ("wecom", "mp")


def parse_tag_group(node: Node) -> TagGroup | None:
    before = len(node.report.problems)
    name = node.text("name", required=True, max_chars=MAX_NAME)
    tags = node.strings("tags", required=True, max_chars=MAX_NAME)
    platforms = node.strings("platforms") or _PLATFORMS
    for i, platform in enumerate(platforms):
        if platform not in _PLATFORMS:
            node.problem(f"platforms[{i}]", f"unknown platform {platform!r} (known: wecom, mp)")
    if name is not None and "/" in name:
        node.problem("name", "must not contain '/': channels refer to tags as \"group/tag\"")
    node.finish()
    if name is None or tags is None or len(node.report.problems) > before:
        return None
    return TagGroup(name, tags, wecom="wecom" in platforms, mp="mp" in platforms)


TAG_GROUPS: Section[TagGroup] = Section("tag_groups", parse_tag_group, ident=("name", lambda g: g.name))


def check_tag_limits(draft: Draft, report: Reporter) -> None:
    """Platform-wide limits and the flat Official Account namespace."""
    groups = draft.get(TAG_GROUPS)
    wecom = sum(len(g.value.tags) for g in groups if g.value.wecom)
    if wecom > MAX_WECOM_TAGS:
        report.add(groups[0].file, "tag_groups", f"{wecom} WeCom tags, at most {MAX_WECOM_TAGS} per corp")
    mp_groups = [g for g in groups if g.value.mp]
    mp_total = sum(len(g.value.tags) for g in mp_groups)
    if mp_total > MAX_MP_TAGS:
        report.add(groups[0].file, "tag_groups", f"{mp_total} Official Account tags, at most {MAX_MP_TAGS}")
    first: dict[str, Located[TagGroup]] = {}
    for located in mp_groups:
        for i, tag in enumerate(located.value.tags):
            other = first.setdefault(tag, located)
            if other is not located:
                report.add(
                    located.file,
                    f"{located.key}.tags[{i}]",
                    f"{tag!r} is also in group {other.value.name!r}; Official Account tags have no groups, "
                    'so names synced there must be unique (set platforms = ["wecom"] on one group)',
                )
