"""``[group_tags]`` in ``group_sop.toml``: which customer groups carry which group tag.

WeCom has no customer-group tags an app can read back, so the operator says it here: each tag
(``"群类型/福利群"``, a tag of tags.toml) lists group-name patterns (fnmatch, case-sensitive) and/or exact
chat ids. A group post's ``targets.tags`` then selects the groups whose name or chat id matches::

    [group_tags]
    "群类型/福利群" = ["山野小食福利群*"]
    "群类型/门店群" = ["*门店*", "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"]
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from bot.content.node import Node
from bot.content.registry import Section


@dataclass(frozen=True, slots=True)
class GroupTags:
    """``rules``: (tag, patterns). A pattern matches a group's chat id exactly or its name by fnmatch."""

    rules: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def tags_of(self, chat_id: str, name: str) -> frozenset[str]:
        return frozenset(
            tag for tag, patterns in self.rules if any(p == chat_id or fnmatchcase(name, p) for p in patterns)
        )


def parse_group_tags(node: Node) -> GroupTags | None:
    rules: list[tuple[str, tuple[str, ...]]] = []
    for tag in list(node.data):
        if "/" not in tag:
            node.has(tag)
            node.problem(tag, 'must be a tag "group/name" from tags.toml')
            continue
        patterns = node.strings(tag, max_items=2000)
        if patterns is not None:
            rules.append((tag, patterns))
    node.finish()
    return GroupTags(tuple(rules))


GROUP_TAGS: Section[GroupTags] = Section("group_tags", parse_group_tags, single=True)
