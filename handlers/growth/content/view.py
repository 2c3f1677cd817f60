"""The typed view of the channels a handler reads: ``channels_of(content).channel_for_state(state)``.

Lookups are by the values callbacks carry (``State``, the QR scene), built once per loaded content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.content.model import Message, Platform
from bot.content.store import Content
from handlers.growth.content.channels import CHANNELS
from handlers.growth.content.model import Channel


@dataclass(frozen=True)
class ChannelsContent:
    channels: tuple[Channel, ...]
    messages: Content = field(repr=False)
    _by_code: Mapping[str, Channel] = field(init=False, repr=False)
    _by_state: Mapping[str, Channel] = field(init=False, repr=False)
    _by_scene: Mapping[str, Channel] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_by_code", {c.code: c for c in self.channels})
        set_(self, "_by_state", {c.attribution_key: c for c in self.channels if c.platform.is_wecom})
        set_(self, "_by_scene", {c.attribution_key: c for c in self.channels if c.platform is Platform.MP})

    def channel(self, code: str) -> Channel | None:
        return self._by_code.get(code)

    def channel_for_state(self, state: str) -> Channel | None:
        """The WeCom channel (联系我 or 加入群聊) whose ``state`` came back in a callback."""
        return self._by_state.get(state)

    def channel_for_scene(self, scene_str: str) -> Channel | None:
        """The Official Account channel of a QR scene (``qrscene_`` prefix already removed)."""
        return self._by_scene.get(scene_str)

    def default_channel(self, platform: Platform) -> Channel | None:
        """The default channel of ``platform``, else any default channel (unattributed arrivals)."""
        defaults = [c for c in self.channels if c.default]
        return next((c for c in defaults if c.platform is platform), defaults[0] if defaults else None)

    def welcome_for(self, channel: Channel) -> Message | None:
        return None if channel.welcome is None else self.messages.message(channel.welcome)


def _view(content: Content) -> ChannelsContent:
    return ChannelsContent(content.get(CHANNELS), content)


def channels_of(content: Content) -> ChannelsContent:
    return content.memo(_view)
