"""``/api/v1/content/…``: drafts edited, checked, diffed and published through the API; roll back; scopes
enforced and every write audited. The app in force switches to what is published."""

from __future__ import annotations

from sqlalchemy import select

from bot.content_revisions import publish_files, read_directory
from handlers.api.tables import AuditEntry
from handlers.content import content_registry
from handlers.growth.content import channels_of
from tests.api.support import Api
from tests.support.settings import SHIPPED_CONTENT


async def _publish_shipped(api: Api) -> int:
    services = api.bot.services
    async with services.sessions() as session, session.begin():
        done = await publish_files(
            session,
            read_directory(SHIPPED_CONTENT),
            content_registry(),
            author="test",
            message="",
            now=services.clock.now(),
        )
    return done.revision


async def test_a_draft_is_edited_checked_diffed_published_and_rolled_back(api: Api) -> None:
    assert (await api.post("/content/drafts", key="write", json={})).status == 409  # nothing published yet
    base = await _publish_shipped(api)
    listed = await api.get("/content/revisions", key="read")
    assert listed.body["live"] == base and listed.body["items"][0]["live"]
    draft = (await api.post("/content/drafts", key="write", json={"message": "双12"})).body
    assert (draft["state"], draft["parent_id"]) == ("draft", base)
    detail = await api.get(f"/content/revisions/{draft['id']}", key="read")
    assert {"path": "channels.toml", "bytes": len((SHIPPED_CONTENT / "channels.toml").read_bytes())} in detail.body[
        "files"
    ]
    async with api.client.get(
        f"/api/v1/content/revisions/{draft['id']}/files/channels.toml",
        headers={"Authorization": f"Bearer {api.keys['read']}"},
    ) as resp:
        channels = await resp.text()
    assert resp.status == 200 and 'code = "pkgcard"' in channels

    broken = channels.replace('code = "pkgcard"', "code = 7", 1)
    file = f"/content/drafts/{draft['id']}/files/channels.toml"
    assert (await api.call("PUT", file, key="write", data=broken.encode())).status == 200
    problems = (await api.get(f"/content/drafts/{draft['id']}/problems", key="read")).body["problems"]
    assert any(p["file"] == "channels.toml" and p["key"].endswith(".code") for p in problems)
    refused = await api.post(f"/content/drafts/{draft['id']}/publish", key="admin")
    assert refused.status == 422 and any(e["field"].startswith("channels.toml:") for e in refused.body["errors"])
    assert (await api.post(f"/content/drafts/{draft['id']}/publish", key="write")).status == 403

    renamed = channels.replace('name = "包裹卡"', 'name = "包裹卡（双12）"', 1)
    await api.call("PUT", file, key="write", data=renamed.encode())
    assert (await api.get(f"/content/drafts/{draft['id']}/problems", key="read")).body["problems"] == []
    diff = (await api.get(f"/content/drafts/{draft['id']}/diff", key="read")).body["diff"]
    assert '+name = "包裹卡（双12）"' in diff
    published = await api.post(f"/content/drafts/{draft['id']}/publish", key="admin")
    assert published.status == 200 and published.body["live"] and published.body["state"] == "published"
    services = api.bot.services
    assert services.reloader.revision == draft["id"]  # this process at once
    assert channels_of(services.content).channel("pkgcard").name == "包裹卡（双12）"  # type: ignore[union-attr]
    assert (await api.call("PUT", f"/content/drafts/{draft['id']}/files/x.toml", key="write", data=b"")).status == 409

    back = await api.post("/content/rollback", key="admin", json={})
    assert back.status == 200 and back.body["id"] == base
    assert channels_of(services.content).channel("pkgcard").name == "包裹卡"  # type: ignore[union-attr]
    assert (await api.post("/content/rollback", key="admin", json={"revision": "one"})).status == 400
    async with services.sessions() as session:
        resources = set((await session.scalars(select(AuditEntry.resource))).all())
    assert {f"content/drafts/{draft['id']}", f"content/drafts/{draft['id']}/channels.toml", "content/live"} <= resources


async def test_paths_outside_the_directory_are_refused(api: Api) -> None:
    await _publish_shipped(api)
    draft = (await api.post("/content/drafts", key="write", json={})).body
    answer = await api.call("PUT", f"/content/drafts/{draft['id']}/files/.hidden.toml", key="write", data=b"x")
    assert answer.status == 409 and "not a path inside" in answer.body["detail"]
    assert (await api.get("/content/revisions/999", key="read")).status == 404
