"""Reading the platform's lists (docs/platform.md#customer-lists), shared by ``import`` and ``reconcile``.

Each list is an async iterator of pages with the position to resume from after that page, so the
importer can checkpoint it and the reconciler can walk it whole:

- :meth:`Lister.customer_pages`: every follow user's customers (``get_follow_user_list``, then
  ``batch/get_by_user`` over ≤ 100 members at a time with its cursor); position ``"<chunk>:<cursor>"``;
- :meth:`Lister.group_pages`: ``groupchat/list`` with its cursor, each listed group read with
  ``groupchat/get`` (a group dismissed meanwhile answers 49008 and is skipped); position = the cursor;
- :meth:`Lister.follower_pages`: ``user/get`` pages of ≤ 10,000 openids from ``next_openid``;
  :meth:`Lister.follower_infos` reads ``user/info/batchget`` 100 at a time.

A cursor the platform no longer knows (40058) restarts that traversal; an ``next_openid`` of a follower
who left (40003) restarts the follower list (both readers write idempotently).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.platform import MpClient, PlatformError, WeComClient

BAD_CURSOR, BAD_OPENID, DISMISSED = 40058, 40003, 49008
USERS_PER_CALL, CUSTOMERS_PER_PAGE, GROUPS_PER_PAGE, FOLLOWERS_PER_BATCH = 100, 100, 1000, 100


def dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def at_of(ts: object) -> datetime | None:
    """A platform timestamp (seconds) as a datetime; None when absent."""
    return datetime.fromtimestamp(ts, UTC) if isinstance(ts, int) and ts > 0 else None


def text_of(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: its rows, the position after it, the share of the list read so far, and
    whether it was the last one."""

    rows: list[dict[str, Any]]
    position: str
    share: float
    done: bool


@dataclass(frozen=True, slots=True)
class FollowerPage:
    """One ``user/get`` page: the openids after ``start`` and the ``next_openid`` (``""`` at the end)."""

    start: str
    openids: list[str]
    total: int | None
    following: str


class Lister:
    """The platform's lists through the platform clients (their token handling and rate-limit backoff)."""

    def __init__(self, wecom: WeComClient | None, mp: MpClient | None, customers_per_page: int = 0) -> None:
        self.wecom, self.mp = wecom, mp
        self.customers_per_page = customers_per_page or CUSTOMERS_PER_PAGE
        self.follow_users: list[str] = []  # as the last customer listing read them

    def _wecom(self) -> WeComClient:
        if self.wecom is None:
            raise RuntimeError("WeCom is not configured")
        return self.wecom

    def _mp(self) -> MpClient:
        if self.mp is None:
            raise RuntimeError("the Official Account is not configured")
        return self.mp

    async def corp_tags(self) -> dict[str, str]:
        """Corp tag id → ``group/name``."""
        listing = await self._wecom().get_corp_tag_list()
        found = {}
        for group in dicts(listing.get("tag_group")):
            for tag in dicts(group.get("tag")):
                found[str(tag["id"])] = f"{group.get('group_name', '')}/{tag.get('name', '')}"
        return found

    async def mp_tags(self) -> dict[int, str]:
        return {int(t["id"]): str(t["name"]) for t in dicts((await self._mp().get_tags()).get("tags"))}

    async def customer_pages(self, position: str = "") -> AsyncIterator[Page]:
        wecom = self._wecom()
        users = self.follow_users = await wecom.get_follow_user_list()
        chunks = [users[i : i + USERS_PER_CALL] for i in range(0, len(users), USERS_PER_CALL)]
        index_text, _, cursor = position.partition(":")
        index = int(index_text or 0)
        while index < len(chunks):
            try:
                page = await wecom.batch_get_by_user(chunks[index], cursor, self.customers_per_page)
            except PlatformError as exc:
                if exc.errcode == BAD_CURSOR and cursor:
                    cursor = ""  # the platform forgot the cursor: read this chunk again (idempotent)
                    continue
                raise
            cursor = str(page.get("next_cursor") or "")
            if not cursor:
                index += 1
            rows = dicts(page.get("external_contact_list"))
            yield Page(rows, f"{index}:{cursor}", index / len(chunks), index >= len(chunks))

    async def group_pages(self, cursor: str = "") -> AsyncIterator[Page]:
        wecom = self._wecom()
        while True:
            try:
                page = await wecom.groupchat_list(cursor, GROUPS_PER_PAGE)
            except PlatformError as exc:
                if exc.errcode == BAD_CURSOR and cursor:
                    cursor = ""
                    continue
                raise
            details: list[dict[str, Any]] = []
            for item in dicts(page.get("group_chat_list")):
                detail = await self.group_detail(str(item["chat_id"]))
                details += [detail] if detail is not None else []
            cursor = str(page.get("next_cursor") or "")
            yield Page(details, cursor, 1.0 if not cursor else 0.0, not cursor)
            if not cursor:
                return

    async def group_detail(self, chat_id: str) -> dict[str, Any] | None:
        """``groupchat/get`` of one group; None when it was dismissed (49008)."""
        try:
            found = dicts([(await self._wecom().groupchat_get(chat_id)).get("group_chat")])
        except PlatformError as exc:
            if exc.errcode != DISMISSED:
                raise
            return None
        return found[0] if found else None

    async def follower_pages(self, start: str = "") -> AsyncIterator[FollowerPage]:
        mp = self._mp()
        while True:
            try:
                page = await mp.user_get(start)
            except PlatformError as exc:
                if exc.errcode == BAD_OPENID and start:
                    start = ""  # that follower left: read the list again (idempotent)
                    continue
                raise
            data = page.get("data")
            openids = [str(o) for o in (data.get("openid") or () if isinstance(data, dict) else ())]
            total = page.get("total")
            following = str(page.get("next_openid") or "") if openids else ""
            yield FollowerPage(start, openids, total if isinstance(total, int) else None, following)
            if not following:
                return
            start = following

    async def follower_infos(self, openids: list[str]) -> list[dict[str, Any]]:
        """``user/info/batchget`` for ≤ 100 openids."""
        return dicts((await self._mp().user_info_batchget(openids)).get("user_info_list"))
