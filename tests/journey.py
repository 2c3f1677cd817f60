"""Helpers for journey tests on :class:`bot.rig.Rig`: drive scheduled outbox work on the frozen clock.

``Rig.drain`` runs what is due *now*. Calls queued for later (``not_before``: the 2-second group
re-read, retry back-offs) need the clock moved; :func:`drain` jumps the frozen clock to each pending
call due within ``horizon`` and drains again, until nothing is due within it::

    await rig.sim.join_group(chat_id, [external_userid], join_state="group_fans")
    await drain(rig, clock)        # handlers → +2 s → groupchat/get → reconcile → mark_tag …
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.clock import FrozenClock
from bot.db.growth import SyncedObject
from bot.db.models import OutboxCall
from bot.db.synced import MEDIA, MP_TAG, WECOM_TAG
from bot.rig import Rig


async def next_due(rig: Rig) -> datetime | None:
    """When the earliest pending outbox call becomes due (None: nothing pending)."""
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        due: datetime | None = await s.scalar(
            select(func.min(OutboxCall.next_attempt_at)).where(OutboxCall.state == "pending")
        )
    return due


async def drain(rig: Rig, clock: FrozenClock, *, horizon: timedelta = timedelta(seconds=10), rounds: int = 50) -> None:
    """Drain now, then keep jumping the clock to the next pending call due within ``horizon`` and draining."""
    for _ in range(rounds):
        await rig.drain()
        due = await next_due(rig)
        if due is None or due > clock.now() + horizon:
            return
        if due > clock.now():
            clock.set(due)
    raise AssertionError(f"outbox still busy after {rounds} rounds")


async def pretend_synced(rig: Rig, clock: FrozenClock, wecom_tags: Iterable[str]) -> dict[str, str]:
    """What ``siyu-bot content sync`` leaves behind for corp tags ``"group/name"``: the tags exist in the
    simulated corp and their ids are recorded. Returns ``{"group/name": tag_id}``."""
    ids = {}
    for key in wecom_tags:
        group, name = key.split("/", 1)
        ids[key] = rig.state.add_corp_tag(group, name, by_api=True).id
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s, s.begin():
        for key, tag_id in ids.items():
            s.add(
                SyncedObject(
                    kind=WECOM_TAG, key=key, remote_id=tag_id, fingerprint="x", data={}, updated_at=clock.now()
                )
            )
    return ids


async def sync_content(rig: Rig, clock: FrozenClock) -> dict[str, str]:
    """Run the real ``siyu-bot content sync`` against the simulator: tags, codes, QR, and the welcome's
    attachment files uploaded with ``media/upload`` (their media ids recorded as ``MEDIA``). Returns the
    synced tag ids as ``{"<kind>:group/name": tag_id}`` for WeCom and Official Account tags."""
    import io

    from bot.sync import sync_command

    out = io.StringIO()
    assert await sync_command(rig.services.settings, False, out, clock=clock) == 0, out.getvalue()
    assert rig.services.sessions is not None
    async with rig.services.sessions() as s:
        rows = (await s.scalars(select(SyncedObject).where(SyncedObject.kind.in_([WECOM_TAG, MP_TAG])))).all()
        tag_ids = {f"{r.kind}:{r.key}": r.remote_id or "" for r in rows}
        media = await s.get(SyncedObject, (MEDIA, "media/gift_29_cover.png"))
        assert media is not None and media.remote_id in rig.state.media
    # what the server's own snapshot refresh (every 30 s) picks up: the welcome door renders attachments from it
    await rig.services.media_ids.refresh(rig.services.sessions)
    return tag_ids
