"""Growth: channel codes and attribution, new friends and followers, welcomes, customer groups, stats, sync."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.background import Background
from bot.feature import Feature
from bot.services import Services
from handlers.growth import follow, friends, groups
from handlers.growth.commands import add_commands
from handlers.growth.content import CONTENT, channels_report
from handlers.growth.reconcile_runs import nightly
from handlers.growth.sync.media import MediaRefresher
from handlers.growth.synced import MEDIA_IDS, RemoteIdSnapshot


async def _media_ids(services: Services) -> AsyncIterator[None]:
    """The snapshot of uploaded media ids the welcome door action renders attachments from (no database at
    the door): loaded at once, refreshed every 30 s, after this process's uploads and on a content reload."""
    snapshot = RemoteIdSnapshot()
    services.parts[MEDIA_IDS] = snapshot
    services.reloader.hooks.append(snapshot.poke)
    background = Background("growth")
    background.spawn(snapshot.run(services.sessions), "media-id-snapshot")
    yield
    await background.stop()
    services.parts.pop(MEDIA_IDS)


def _media(services: Services) -> AsyncIterator[None]:
    """Uploaded attachments expire after three days on the platform: re-upload before they do."""

    async def refresh_snapshot() -> None:
        snapshot = services.parts.get(MEDIA_IDS)
        if snapshot is not None:
            await snapshot.try_refresh(services.sessions)

    return MediaRefresher(services, after_upload=refresh_snapshot).cleanup_ctx()


GROWTH = Feature(
    "growth",
    content=CONTENT,
    content_reports=(channels_report,),
    routers=(friends.router, follow.router, groups.router),
    workers=(_media_ids, _media, nightly),
    commands=(add_commands,),
)
