"""The growth feature's content model: channels (渠道码) — one traffic source with its own code each."""

from __future__ import annotations

from dataclasses import dataclass

from bot.content.model import Platform


@dataclass(frozen=True, slots=True)
class ContactWay:
    """联系我 settings (add_contact_way): staff, optional weekday schedule and daily add limit."""

    staff: tuple[str, ...]
    schedule: tuple[tuple[str, ...], ...] | None  # Monday first; an empty day falls back to ``staff``
    daily_limit: int | None  # adds per staff member per local day
    backup_staff: tuple[str, ...]  # take over when every scheduled member reached the limit
    skip_verify: bool

    def staff_on(self, weekday: int) -> tuple[str, ...]:
        """Staff for a weekday (Monday = 0, as ``date.weekday()``), before daily limits apply."""
        if self.schedule is not None and self.schedule[weekday]:
            return self.schedule[weekday]
        return self.staff


@dataclass(frozen=True, slots=True)
class JoinWay:
    """加入群聊 settings (groupchat/add_join_way)."""

    chat_ids: tuple[str, ...]
    auto_create_room: bool
    room_base_name: str | None
    room_base_id: int | None


@dataclass(frozen=True, slots=True)
class Channel:
    """One traffic source with its own code. ``state`` is set for WeCom, ``scene_str`` for mp;
    ``contact_way`` only for wecom_friend, ``join_way`` only for wecom_group."""

    code: str
    name: str
    platform: Platform
    state: str | None
    scene_str: str | None
    contact_way: ContactWay | None
    join_way: JoinWay | None
    tags: tuple[str, ...]  # "group/name" references into the tag groups
    welcome: str | None
    default: bool

    @property
    def attribution_key(self) -> str:
        """The value that comes back in callbacks: ``State`` for WeCom, the QR scene for mp."""
        key = self.state if self.platform.is_wecom else self.scene_str
        return key or self.code
