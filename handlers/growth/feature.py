"""Growth: channel codes and attribution, new friends and followers, welcomes, customer groups, stats, sync."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.feature import Feature
from bot.services import Services
from handlers.growth import follow, friends, groups
from handlers.growth.commands import add_commands
from handlers.growth.sync.media import MediaRefresher


def _media(services: Services) -> AsyncIterator[None]:
    """Uploaded attachments expire after three days on the platform: re-upload before they do."""
    return MediaRefresher(services).cleanup_ctx()


GROWTH = Feature(
    "growth",
    routers=(friends.router, follow.router, groups.router),
    workers=(_media,),
    commands=(add_commands,),
)
