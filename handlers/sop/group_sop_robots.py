"""Group robot webhooks (docs/platform.md#group-robots): keys, a caller that keeps them out of the database, and pacing.

Where keys come from: a webhook key is a credential (anyone holding it can post in the group), so it is
not operator content (reviewed, versioned) but a secret beside the config — a TOML file, by default
``group_robots.toml`` next to the database, never committed::

    [group_robots]
    wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"

Outbox rows name the group (``platform = "robot"``, ``_params = {"chat_id": …}``); :class:`RobotCaller`
looks the key up at call time and posts ``/cgi-bin/webhook/send?key=…`` through the WeCom client, so
errcodes map as for any call (45009 → retried later, 93000 invalid key → failed). Keys are held in
:class:`~bot.config.Secret` and never appear in reprs or logs.

Pacing: 20 messages a minute per robot; sends to one robot are spaced :data:`ROBOT_SPACING` apart with
``not_before``, counting what is already queued for that robot in the last minute.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Secret
from bot.db.models import OutboxCall
from bot.logs import remember_secret
from bot.outbox import PlatformCaller
from bot.platform.errors import ApiError

ROBOT_PLATFORM = "robot"
ROBOT_API = "webhook/send"
INVALID_KEY = 93000  # docs/platform.md#group-robots
ROBOT_SPACING = timedelta(seconds=3.5)  # ≈ 17 a minute, under the 20/min limit with room for clock skew


class RobotKeys:
    """``chat_id → webhook key``; the keys are secrets."""

    def __init__(self, keys: Mapping[str, str | Secret] | None = None) -> None:
        self._keys = {c: k if isinstance(k, Secret) else Secret(k) for c, k in (keys or {}).items()}
        for key in self._keys.values():
            remember_secret(key.get())  # it travels in the URL (?key=…): keep it out of every log line

    def has(self, chat_id: str) -> bool:
        return bool(self._keys.get(chat_id))

    def key(self, chat_id: str) -> Secret | None:
        return self._keys.get(chat_id)

    def __repr__(self) -> str:
        return f"RobotKeys({len(self._keys)} groups, keys hidden)"

    __str__ = __repr__


def load_robot_keys(path: Path) -> RobotKeys:
    """``[group_robots]`` from ``path``; a missing file means no robots."""
    if not path.exists():
        return RobotKeys()
    data = tomllib.loads(path.read_text(encoding="utf-8")).get("group_robots", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: [group_robots] must map chat_id to a webhook key string")
    return RobotKeys({str(k): str(v) for k, v in data.items()})


class RobotCaller:
    """A :class:`~bot.outbox.PlatformCaller` for ``platform = "robot"`` rows (registered as ``clients["robot"]``)."""

    def __init__(self, wecom: PlatformCaller, keys: RobotKeys) -> None:
        self._wecom = wecom
        self.keys = keys

    async def call(
        self,
        api: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        method: str = "POST",
    ) -> dict[str, Any]:
        chat_id = str((params or {}).get("chat_id", ""))
        key = self.keys.key(chat_id)
        if api != ROBOT_API or key is None:
            raise ApiError(ROBOT_API, INVALID_KEY, f"no robot webhook key for chat {chat_id}")
        return await self._wecom.call(ROBOT_API, body, {"key": key.get()}, method)


def _chat_of(payload: dict[str, Any]) -> str:
    params = payload.get("_params")
    return str(params.get("chat_id", "")) if isinstance(params, dict) else ""


async def robot_slots(
    session: AsyncSession, keys: RobotKeys, chat_ids: Sequence[str], now: datetime
) -> dict[str, datetime]:
    """A ``not_before`` per group: sends through one robot key at least :data:`ROBOT_SPACING` apart."""
    recent = await session.execute(
        select(OutboxCall.payload, OutboxCall.next_attempt_at).where(
            OutboxCall.platform == ROBOT_PLATFORM,
            OutboxCall.next_attempt_at >= now - timedelta(minutes=1),
        )
    )
    last: dict[str, datetime] = {}
    for payload, at in recent.all():
        key = keys.key(_chat_of(payload))
        if key is not None and (key.get() not in last or at > last[key.get()]):
            last[key.get()] = at
    slots: dict[str, datetime] = {}
    for chat_id in chat_ids:
        key = keys.key(chat_id)
        if key is None:
            continue
        previous = last.get(key.get())
        slot = now if previous is None else max(now, previous + ROBOT_SPACING)
        slots[chat_id] = last[key.get()] = slot
    return slots
