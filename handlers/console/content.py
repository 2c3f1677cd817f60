"""内容: the content revisions, and a draft edited field by field, checked, previewed, diffed and published.

The database holds what every replica runs (:mod:`bot.content_revisions`); ``content/`` in git stays the
reviewed source (``content push`` / ``content pull``). An operator starts a draft from the live revision,
edits any value of any file (a form per file, each field named by the key the checks use, so a problem is
shown next to its field — :mod:`bot.content.edit`), sees the welcome and reply messages as WeChat shows
them, the group posts of the next 14 days, and the diff against the live revision; an admin publishes it
(all or nothing, on every replica within ``content_poll_seconds``) or rolls back. Every write is audited
like the admin API's (``console:<email>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.content import Content, Problem
from bot.content.edit import EditError, Field, apply_edits, fields, problems_by_field
from bot.content.render import render
from bot.content_revisions import (
    RevisionError,
    check_files,
    diff_files,
    live_revision,
    publish_files,
    read_directory,
    revision_files,
    revision_info,
    revisions,
)
from bot.scheduler import due_fires
from handlers.api.content import discard_as, publish_as, roll_back_as, start_draft, write_draft_file
from handlers.api.http import audit_entry
from handlers.console.apicall import call_for
from handlers.console.auth import Viewer, error_page, page, see_other
from handlers.console.core import CONSOLE, PREFIX
from handlers.console.i18n import t
from handlers.content import content_registry
from handlers.growth.content import channels_of
from handlers.sop.content import sop_of

PREVIEW_DAYS = 14
SAMPLE: dict[str, str | None] = {"nickname": None, "staff_name": None}  # right after an add: fallbacks


@dataclass(frozen=True)
class Bubble:
    """One message as the customer sees it: text, then each attachment as a card."""

    ref: str
    text: str
    cards: tuple[dict[str, str], ...]


def _back(path: str, done: str = "") -> web.Response:
    return see_other(f"{PREFIX}{path}" + (f"?done={quote(done)}" if done else ""))


def _toml_files(files: Mapping[str, bytes]) -> list[str]:
    return sorted(p for p in files if p.endswith(".toml"))


def _cards(attachments: tuple[dict[str, Any], ...]) -> tuple[dict[str, str], ...]:
    out = []
    for attachment in attachments:
        kind = str(attachment.get("msgtype", ""))
        body = attachment.get(kind, {}) if isinstance(attachment.get(kind), dict) else {}
        out.append(
            {
                "kind": kind,
                "title": str(body.get("title") or body.get("url") or kind),
                "desc": str(body.get("desc") or ""),
            }
        )
    return tuple(out)


def bubbles(content: Content, message_id: str, channel: Mapping[str, str] | None = None) -> list[Bubble]:
    """Every variant of a message as a new friend sees it (profile not known yet: the fallbacks)."""
    message = content.message(message_id)
    if message is None:
        return []
    media = {path: "media" for path in content.media_paths()}  # preview: an uploaded id stands for each file
    variables = {**SAMPLE, **(channel or {})}
    return [
        Bubble(v.ref, (r := render(v, variables, content.fallbacks, media)).text, _cards(r.attachments))
        for v in message.variants
    ]


def welcome_previews(content: Content) -> list[tuple[str, list[Bubble]]]:
    """Each channel's welcome, as its new friend sees it."""
    out = []
    for channel in channels_of(content).channels:
        if channel.welcome:
            known = {"channel": channel.code, "channel_name": channel.name}
            out.append((f"{channel.name}（{channel.code}）", bubbles(content, channel.welcome, known)))
    return out


def post_plan(content: Content, now: Any, tz: Any) -> list[tuple[str, str]]:
    """(local time, post name) of the group posts' fires in the next ``PREVIEW_DAYS`` days."""
    posts = {p.id: p for p in sop_of(content).group_posts}
    fires = due_fires(posts.values(), now, now + timedelta(days=PREVIEW_DAYS), tz)
    return [(at.astimezone(tz).strftime("%m-%d %a %H:%M"), posts[pid].name or pid) for pid, at in fires]


@page("read")
async def content(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    async with console.services.sessions() as session:
        rows = await revisions(session, 50)
        live = await live_revision(session)
    return console.render(
        "content.html",
        viewer=viewer,
        nav="content",
        rows=rows,
        live=live,
        source=console.services.settings.content_dir,
        done=request.query.get("done", ""),
    )


@page("admin")
async def push_directory(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The first revision: the content directory the server runs, published as it is."""
    console = request.app[CONSOLE]
    call = call_for(request, viewer)
    try:
        files = read_directory(console.services.settings.content_dir)
        async with console.services.sessions() as session, session.begin():
            done = await publish_files(
                session, files, content_registry(), author=call.caller.name, message="content/", now=console.now()
            )
            audit_entry(session, call, "content/live", None, {"revision": done.revision})
    except (RevisionError, ValueError) as exc:
        return error_page(request, 409, str(exc), viewer)
    await console.services.reloader.follow()
    return _back("/content", f"revision {done.revision}")


@page("write")
async def new_draft(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    form = await request.post()
    try:
        draft = await start_draft(call_for(request, viewer), str(form.get("message", ""))[:500])
    except RevisionError as exc:
        return error_page(request, 409, str(exc), viewer)
    return _back(f"/content/drafts/{draft}")


async def _draft_files(request: web.Request) -> tuple[int, dict[str, bytes]]:
    draft = int(request.match_info["id"])
    async with request.app[CONSOLE].services.sessions() as session:
        info = await revision_info(session, draft)
        files = await revision_files(session, draft) if info is not None and info.state == "draft" else {}
    if not files:
        raise web.HTTPNotFound()
    return draft, files


def _editor_context(
    files: Mapping[str, bytes], chosen: str, problems: list[Problem], field_errors: Mapping[str, str]
) -> dict[str, Any]:
    text = files[chosen].decode("utf-8", "replace") if chosen in files else ""
    try:
        found: list[Field] = fields(text)
        broken = ""
    except EditError as exc:
        found, broken = [], exc.reason
    placed = problems_by_field(problems, chosen, [f.key for f in found])
    for key, reason in field_errors.items():
        placed.setdefault(key, []).insert(0, reason)
    return {"fields": found, "placed": placed, "broken": broken, "text": text}


async def _editor(
    request: web.Request, viewer: Viewer, *, status: int = 200, field_errors: Mapping[str, str] | None = None
) -> web.Response:
    console = request.app[CONSOLE]
    draft, files = await _draft_files(request)
    toml = _toml_files(files)
    chosen = request.query.get("file", "")
    chosen = chosen if chosen in toml else (toml[0] if toml else "")
    checked, problems = check_files(files, content_registry())
    async with console.services.sessions() as session:
        live = await live_revision(session)
        old = await revision_files(session, live) if live is not None else {}
        info = await revision_info(session, draft)
    services = console.services
    shown = checked or services.content
    now, tz = console.now(), services.settings.tz
    return console.render(
        "content_draft.html",
        http_status=status,
        viewer=viewer,
        nav="content",
        draft=info,
        files=toml,
        counts={f: sum(p.file == f for p in problems) for f in toml},
        chosen=chosen,
        problems=problems,
        diff="".join(diff_files(old, files, f"live-{live}", f"draft-{draft}")),
        welcomes=welcome_previews(shown),
        plan_new=post_plan(shown, now, tz),
        plan_live=post_plan(services.content, now, tz),
        valid=checked is not None,
        done=t("content.saved") if request.query.get("done") == "saved" else "",
        **_editor_context(files, chosen, problems, field_errors or {}),
    )


@page("read")
async def draft_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    return await _editor(request, viewer)


@page("write")
async def save_fields(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    draft, files = await _draft_files(request)
    chosen = request.query.get("file", "")
    if chosen not in _toml_files(files):
        raise web.HTTPNotFound()
    form = await request.post()
    edits = {str(k)[2:]: str(v) for k, v in form.items() if str(k).startswith("f:")}
    try:
        text = apply_edits(files[chosen].decode("utf-8"), edits, chosen)
    except EditError as exc:
        return await _editor(request, viewer, status=422, field_errors={exc.key: exc.reason})
    if text.encode() != files[chosen]:
        await write_draft_file(call_for(request, viewer), draft, chosen, text.encode())
    return _back(f"/content/drafts/{draft}?file={quote(chosen)}&done=saved")


@page("admin")
async def publish(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    draft, _ = await _draft_files(request)
    if await publish_as(call_for(request, viewer), draft):
        return await _editor(request, viewer, status=422)  # the problems, next to their fields
    return _back("/content", f"revision {draft}")


@page("write")
async def discard(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    draft, _ = await _draft_files(request)
    await discard_as(call_for(request, viewer), draft)
    return _back("/content")


@page("admin")
async def roll_back(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    raw = str((await request.post()).get("revision", ""))
    try:
        live = await roll_back_as(call_for(request, viewer), int(raw) if raw.isdigit() else None)
    except RevisionError as exc:
        return error_page(request, 409, str(exc), viewer)
    return _back("/content", f"revision {live}")
