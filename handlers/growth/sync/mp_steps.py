"""Applying Official Account actions: user tags and permanent string-scene QR codes
(docs/platform.md#parametric-qr-codes).

Page for tags: [MP:doc/offiaccount/User_Management/User_Tag_Management.html] — ≤ 100 tags per
account, names unique (45157), so an existing tag of our name is adopted, never created twice.
QR codes: ≤ 100,000 permanent codes per account and they never change; a new ``scene_str`` is a new code.
"""

from __future__ import annotations

from handlers.growth.sync.model import Action, Op, PlatformState
from handlers.growth.sync.target import SyncTarget, UnexpectedResponse, object_field, record_of, text_field, wanted


async def sync_mp_tag(action: Action, platform: PlatformState, target: SyncTarget) -> None:
    """Record an existing tag of our name (``tags/get``), or ``tags/create`` it → ``tag.id``."""
    desired = wanted(action)
    name = desired.fields["name"]
    if action.op is Op.ADOPT:
        existing = (platform.mp_tags or {})[name]
        await target.store.save(record_of(desired, str(existing), created=False))
        return
    tag = object_field("tags/create", await target.mp_client().create_tag(name), "tag")
    tag_id = tag.get("id")
    if not isinstance(tag_id, int):
        raise UnexpectedResponse("tags/create", "no tag.id in the answer")
    await target.store.save(record_of(desired, str(tag_id), created=True))


async def create_mp_qrcode(action: Action, target: SyncTarget) -> None:
    """``qrcode/create`` ``QR_LIMIT_STR_SCENE`` → ``ticket`` (remote id) and ``url`` (what the QR encodes)."""
    desired = wanted(action)
    resp = await target.mp_client().qrcode_create_limit_str(desired.fields["scene_str"])
    ticket, url = text_field("qrcode/create", resp, "ticket"), text_field("qrcode/create", resp, "url")
    replaced = []
    if action.record is not None:
        earlier = action.record.data.get("replaced")
        replaced = [*(earlier if isinstance(earlier, list) else []), action.record.remote_id]
    await target.store.save(record_of(desired, ticket, url=url, replaced=replaced))
