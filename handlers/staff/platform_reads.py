"""What the staff commands read from WeCom before deciding (docs/platform.md#staff-transfers): departed
members' unassigned customers, a member's groups and customers, the active members and departments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.platform import WeComClient

PAGE = 1000  # get_unassigned_list page_size, groupchat/list limit
BY_USER_LIMIT = 100


@dataclass(frozen=True)
class Unassigned:
    handover_userid: str
    external_userid: str
    dimission_time: datetime | None


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


async def unassigned(wecom: WeComClient) -> list[Unassigned]:
    """Every page of ``get_unassigned_list``."""
    found: list[Unassigned] = []
    cursor = ""
    while True:
        page = await wecom.call("externalcontact/get_unassigned_list", {"cursor": cursor, "page_size": PAGE})
        for item in _dicts(page.get("info")):
            ts = item.get("dimission_time")
            when = datetime.fromtimestamp(ts, UTC) if isinstance(ts, int) and ts > 0 else None
            found.append(Unassigned(str(item.get("handover_userid")), str(item.get("external_userid")), when))
        cursor = str(page.get("next_cursor") or "")
        if not cursor or page.get("is_last") is True:
            return found


async def groups_of(wecom: WeComClient, owner: str) -> list[str]:
    """The chat ids of ``owner``'s customer groups (``groupchat/list`` with ``owner_filter``)."""
    chats: list[str] = []
    cursor = ""
    while True:
        body = {"status_filter": 0, "owner_filter": {"userid_list": [owner]}, "cursor": cursor, "limit": PAGE}
        page = await wecom.call("externalcontact/groupchat/list", body)
        chats += [str(c["chat_id"]) for c in _dicts(page.get("group_chat_list")) if c.get("chat_id")]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return chats


async def customers_of(wecom: WeComClient, userid: str) -> list[str]:
    """The external_userids of ``userid``'s customers (``batch/get_by_user``)."""
    found: list[str] = []
    cursor = ""
    while True:
        page = await wecom.batch_get_by_user([userid], cursor, BY_USER_LIMIT)
        for row in _dicts(page.get("external_contact_list")):
            ext = (row.get("external_contact") or {}).get("external_userid")
            if ext:
                found.append(str(ext))
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return list(dict.fromkeys(found))


async def active_members(wecom: WeComClient) -> list[str]:
    return [str(u) for u in await wecom.get_follow_user_list()]


async def member(wecom: WeComClient, userid: str) -> dict[str, Any]:
    return await wecom.call("user/get", None, {"userid": userid}, "GET")
