"""Attachment files → WeCom temporary media (``media/upload``, [W:90253]), kept fresh.

Welcome attachments name local files (``path``, ``pic_path``); ``send_welcome_msg`` needs their
``media_id`` / ``pic_media_id``. A temporary media_id is valid **3 days**, so each file is uploaded again
when its recorded upload is older than :data:`REFRESH_AFTER` (2.5 days: half a day of margin) or when the
file's content changed (sha256). Records: ``platform_objects`` kind ``media``, key = the content-relative
path, ``remote_id`` = media_id, ``data.sha256`` / ``data.created_at`` (epoch seconds, the platform's).

* ``content sync`` plans these with everything else (``create`` / ``replace`` (file changed) /
  ``refresh`` (expiring) / ``unchanged``), so a second sync with fresh media uploads nothing.
* :func:`refresh_media` does only this step (for a periodic job); :class:`MediaRefresher` runs it every
  hour inside the server, in one process at a time (:mod:`bot.db.only_one`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.background import Background
from bot.clock import Clock
from bot.config import Settings
from bot.content import Content, FileAttachment, ImageAttachment, MiniprogramAttachment, VideoAttachment
from bot.content.model import Attachment, media_path
from bot.db.only_one import only_one
from bot.platform import WeComClient
from handlers.content import load_content
from handlers.growth.sync.model import MEDIA, WRITE_OPS, Action, Desired, Op, Record
from handlers.growth.sync.planner import changed_fields
from handlers.growth.sync.records import RecordStore
from handlers.growth.sync.target import SyncResult, SyncTarget, record_of, wanted

log = logging.getLogger(__name__)

REFRESH_AFTER = timedelta(days=2.5)
"""Upload again after this long; WeCom keeps a temporary media_id for 3 days."""

_BY_SUFFIX = {".jpg": "image", ".jpeg": "image", ".png": "image", ".mp4": "video"}


def upload_type(attachment: Attachment) -> str:
    """The ``media/upload`` ``type`` an attachment's file needs (a mini-program cover is an image)."""
    if isinstance(attachment, ImageAttachment | MiniprogramAttachment):
        return "image"
    if isinstance(attachment, VideoAttachment):
        return "video"
    if isinstance(attachment, FileAttachment):
        return "file"
    raise ValueError(f"{type(attachment).__name__} has no file to upload")


def media_types(content: Content) -> dict[str, str]:
    """``{path: upload type}`` for every file of ``content.media_paths()``.

    The type comes from the attachment that names the file; a path known only to ``media_paths()``
    (another content kind) gets one from its suffix (jpg/png image, mp4 video, else file).
    """
    types: dict[str, str] = {}
    for message in content.messages:
        for variant in message.variants:
            for attachment in variant.attachments:
                path = media_path(attachment)
                if path is not None:
                    types.setdefault(path, upload_type(attachment))
    return {p: types.get(p) or _BY_SUFFIX.get(PurePosixPath(p).suffix.lower(), "file") for p in content.media_paths()}


def file_digest(root: Path, rel: str) -> str:
    """sha256 of the file, or ``""`` when it cannot be read (planned as changed; the upload reports why)."""
    try:
        return hashlib.sha256((root / rel).read_bytes()).hexdigest()
    except OSError:
        return ""


def media_fields(kind: str, sha256: str) -> dict[str, str]:
    return {"type": kind, "sha256": sha256}


def media_objects(content: Content) -> list[Desired]:
    """One desired object per attachment file; its fields (type, sha256) are what a record must match."""
    root = Path(content.root)
    return [
        Desired(MEDIA, path, media_fields(kind, file_digest(root, path)))
        for path, kind in sorted(media_types(content).items())
    ]


def uploaded_at(record: Record) -> datetime | None:
    created = record.data.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int):
        return None
    return datetime.fromtimestamp(created, UTC)


def expiring(record: Record, now: datetime) -> bool:
    """Whether the recorded upload is older than :data:`REFRESH_AFTER` (or its time is unknown)."""
    at = uploaded_at(record)
    return at is None or now - at >= REFRESH_AFTER


def plan_media(desired: Iterable[Desired], records: Iterable[Record], now: datetime) -> tuple[Action, ...]:
    """Pure: ``create`` (never uploaded), ``replace`` (file changed), ``refresh`` (expiring), ``unchanged``;
    ``stale`` for recorded files no attachment uses any more (left alone; WeCom drops them after 3 days)."""
    recorded = {r.key: r for r in records if r.kind == MEDIA}
    actions: list[Action] = []
    for d in desired:
        record = recorded.pop(d.key, None)
        if record is None or not record.remote_id:
            actions.append(Action(Op.CREATE, MEDIA, d.key, d, record))
        elif record.fingerprint != d.fingerprint:
            actions.append(Action(Op.REPLACE, MEDIA, d.key, d, record, changed_fields(d, record)))
        elif expiring(record, now):
            actions.append(Action(Op.REFRESH, MEDIA, d.key, d, record, ("expiring",)))
        else:
            actions.append(Action(Op.UNCHANGED, MEDIA, d.key, d, record))
    actions.extend(Action(Op.STALE, MEDIA, r.key, None, r) for r in recorded.values())
    return tuple(actions)


async def upload_media(action: Action, target: SyncTarget) -> None:
    """Read the file, ``media/upload`` it, record the new media_id with the sha256 actually uploaded."""
    desired = wanted(action)
    if target.media_root is None:
        raise ValueError(f"{action.key}: no content directory to read the file from")
    path = target.media_root / action.key
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {action.key}: {exc.strerror}") from None
    kind = str(desired.fields["type"])
    fields = media_fields(kind, hashlib.sha256(data).hexdigest())
    media_id, created_at = await target.wecom_client().upload_media(kind, PurePosixPath(action.key).name, data)
    uploaded = Desired(MEDIA, action.key, fields)
    await target.store.save(record_of(uploaded, media_id, sha256=fields["sha256"], created_at=created_at, type=kind))


async def refresh_media(
    settings: Settings,
    store: RecordStore,
    client: WeComClient,
    clock: Clock,
    content: Content | None = None,
) -> int:
    """Upload every attachment file that is new, changed or expiring; the number uploaded.

    ``content`` defaults to loading ``settings.content_dir`` (raises ``ContentError`` when broken). A
    failed file is logged and the others go on; rejected credentials raise.
    """
    loaded = content if content is not None else load_content(settings.content_dir)
    records = [r for r in await store.load() if r.kind == MEDIA]
    actions = [a for a in plan_media(media_objects(loaded), records, clock.now()) if a.op in WRITE_OPS]
    target = SyncTarget(store, client, None, media_root=Path(loaded.root))
    result = SyncResult()
    for action in actions:
        await result.run([action], upload_media(action, target))
    for action, reason in result.errors:
        log.warning("media upload failed for %s: %s", action.key, reason)
    return len(result.applied)


class MediaServices(Protocol):
    """What :class:`MediaRefresher` needs of the app's ``Services``."""

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession] | None: ...

    @property
    def engine(self) -> AsyncEngine | None: ...

    @property
    def clients(self) -> Mapping[str, object]: ...

    @property
    def content(self) -> Content: ...


class MediaRefresher:
    """Keeps attachment media fresh while the server runs: :func:`refresh_media` every ``interval``.

    The first run is ``first_delay`` seconds after start (startup and a just-run ``content sync`` settle
    first); 2.5 days of the 3-day validity leave 12 hours for it to catch up after downtime. Needs the
    database and a WeCom client (``services.clients["wecom"]``); without them it does nothing.
    """

    def __init__(
        self,
        services: MediaServices,
        *,
        interval: float = 3600.0,
        first_delay: float = 60.0,
        after_upload: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._services = services
        self._after_upload = after_upload  # e.g. refresh the door actions' snapshot of media ids
        self._interval = interval
        self._first_delay = first_delay
        self._background = Background("media")
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._background.every("refresh", self._interval, self._refresh, first=self._first_delay)

    async def stop(self) -> None:
        await self._background.stop()
        self._started = False

    async def cleanup_ctx(self) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: start on startup, stop on cleanup."""
        self.start()
        yield
        await self.stop()

    async def run_once(self) -> int:
        """One refresh — by one process at a time: every worker and replica runs this loop, and without
        the lock N of them starting together would each upload every expiring file."""
        s = self._services
        client = s.clients.get("wecom")
        if s.sessions is None or s.engine is None or not isinstance(client, WeComClient):
            return 0
        async with only_one(s.engine, "media-refresh") as mine:
            if not mine:
                return 0  # another process is refreshing; the next run here reads what it recorded
            store = RecordStore(s.sessions, s.clock)
            uploaded = await refresh_media(s.settings, store, client, s.clock, s.content)
        if uploaded and self._after_upload is not None:
            await self._after_upload()
        return uploaded

    async def _refresh(self) -> None:
        uploaded = await self.run_once()
        if uploaded:
            log.info("media refresh: %d file(s) uploaded", uploaded)
