"""Official Account customer-service windows
(docs/platform.md#customer-service-messages): when may we ``message/custom/send``?

* the user sends a message → **5** sends within **48 h**;
* the user follows, scans a QR code or clicks a ``click`` menu button → **3** sends within **1 minute**;
* otherwise the platform answers **45015** — so automation asks :func:`take_slot` first and never sends
  outside a window.

Why a table (``mp_windows``) rather than deriving the windows from receipts: the inbox stores payloads
as JSON, so "the follower's last text" would be an unindexed JSON scan on every drip step, and receipts
say nothing about what we already sent in the window. A row per openid is updated in the same
transaction as the event that opens a window (the drip router) and as the send that uses it (the drip
worker), so the count cannot drift from what automation queued.

Other code paths also send custom messages (a passive reply that missed its HTTP budget goes out as a
custom message; keyword replies later). They do not count here, so automation keeps
:data:`RESERVED` slot of each window for them: drips use at most 2 of the follow window's 3 and 4 of
the message window's 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.upsert import insert_ignore
from handlers.sop.tables import MpWindow

MESSAGE_WINDOW = (timedelta(hours=48), 5)  # after the user writes
EVENT_WINDOW = (timedelta(minutes=1), 3)  # after follow / scan / menu click
RESERVED = 1  # slots left for replies that do not go through this module
WindowKind = Literal["message", "event"]


@dataclass(frozen=True, slots=True)
class Slot:
    kind: WindowKind
    closes_at: datetime  # use as the outbox deadline: a send after it would fail with 45015


async def window_opened(session: AsyncSession, openid: str, kind: WindowKind, at: datetime, now: datetime) -> None:
    """The user wrote (``message``) or followed/scanned/clicked (``event``) at ``at``: a new window."""
    at_col, sent_col = (MpWindow.message_at, "message_sent") if kind == "message" else (MpWindow.event_at, "event_sent")
    values = {"openid": openid, at_col.key: at, sent_col: 0, "updated_at": now}
    if await insert_ignore(session, MpWindow, {"message_sent": 0, "event_sent": 0, **values}, ["openid"]):
        return
    await session.execute(  # only a newer event moves the window (callbacks may arrive out of order)
        update(MpWindow)
        .where(MpWindow.openid == openid, or_(at_col.is_(None), at_col < at))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def windows_closed(session: AsyncSession, openid: str, now: datetime) -> None:
    """Unfollow: every window is gone (the platform answers 45015 to an unsubscribed user)."""
    await session.execute(
        update(MpWindow)
        .where(MpWindow.openid == openid)
        .values(message_at=None, event_at=None, message_sent=0, event_sent=0, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _open(at: datetime | None, sent: int, spec: tuple[timedelta, int], now: datetime) -> datetime | None:
    if at is None or now >= at + spec[0] or sent >= spec[1] - RESERVED:
        return None
    return at + spec[0]


async def take_slot(session: AsyncSession, openid: str, now: datetime) -> Slot | None:
    """Use one send of an open window (the 1-minute one first, as it expires first), or None."""
    row = await session.scalar(
        select(MpWindow).where(MpWindow.openid == openid).with_for_update().execution_options(populate_existing=True)
    )
    if row is None:
        return None
    closes = _open(row.event_at, row.event_sent, EVENT_WINDOW, now)
    if closes is not None:
        row.event_sent += 1
        return Slot("event", closes)
    closes = _open(row.message_at, row.message_sent, MESSAGE_WINDOW, now)
    if closes is not None:
        row.message_sent += 1
        return Slot("message", closes)
    return None
