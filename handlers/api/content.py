"""``/api/v1/content/…``: content revisions — list and read them, edit a draft, check it, diff it against the
live revision, publish it (admin) and roll back (admin). The same code as ``siyu-bot content push|rollback``
(:mod:`bot.content_revisions`); a publish is in force on this process at once and on every other replica
within ``content_poll_seconds``. The console's content pages use these functions too.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from bot.content import Problem as ContentProblem
from bot.content_revisions import (
    MAX_FILE_BYTES,
    RevisionError,
    RevisionInfo,
    check_files,
    create_draft,
    diff_files,
    discard_draft,
    live_revision,
    publish_draft,
    put_draft_file,
    revision_files,
    revisions,
    rollback,
)
from handlers.api.http import Call, Problem, Route, audit_entry, invalid, json_body, json_response, not_found
from handlers.api.schemas import BOOL, INT, NSTR, NTIME, STR, TIME, Schema, nullable, obj, ref
from handlers.content import content_registry

_REV = r"{id:\d+}"
_PATH = "{path:.+}"


def info_json(info: RevisionInfo) -> dict[str, Any]:
    return asdict(info)


def problems_json(problems: list[ContentProblem]) -> list[dict[str, str]]:
    return [{"file": p.file, "key": p.key, "reason": p.reason} for p in problems]


async def _info(call: Call, revision: int) -> RevisionInfo:
    async with call.services.sessions() as session:
        found = [
            r for r in await revisions(session, 1_000_000, ("published", "draft", "discarded")) if r.id == revision
        ]
    if not found:
        raise not_found(f"revision {revision}")
    return found[0]


def _refused(exc: RevisionError) -> Problem:
    return Problem(409, "Not possible", str(exc))


async def list_revisions(call: Call) -> web.Response:
    async with call.services.sessions() as session:
        rows = await revisions(session, 100)
        live = await live_revision(session)
    return json_response({"live": live, "items": [info_json(r) for r in rows]})


async def revision(call: Call) -> web.Response:
    info = await _info(call, call.int_param("id"))
    async with call.services.sessions() as session:
        files = await revision_files(session, info.id)
    listing = [{"path": path, "bytes": len(data)} for path, data in sorted(files.items())]
    return json_response({**info_json(info), "files": listing})


async def revision_file(call: Call) -> web.Response:
    revision_id, path = call.int_param("id"), call.param("path")
    async with call.services.sessions() as session:
        data = (await revision_files(session, revision_id)).get(path)
    if data is None:
        raise not_found(f"{path} in revision {revision_id}")
    kind = "text/plain" if path.endswith(".toml") else "application/octet-stream"
    return web.Response(body=data, content_type=kind, charset="utf-8" if kind == "text/plain" else None)


# --- the writes, shared with the console (handlers/console/content.py): audited, then in force here ---


def _who(call: Call) -> str:
    return f"api:{call.caller.name}" if call.caller.via_key else call.caller.name


async def start_draft(call: Call, message: str) -> int:
    """A draft copied from the live revision; :class:`RevisionError` when nothing was published."""
    async with call.services.sessions() as session, session.begin():
        draft = await create_draft(session, author=_who(call), message=message, now=call.services.clock.now())
        audit_entry(session, call, f"content/drafts/{draft}", None, {"draft": draft, "message": message})
    return draft


async def write_draft_file(call: Call, draft: int, path: str, data: bytes | None) -> None:
    """Replace (``None``: remove) one file of a draft."""
    async with call.services.sessions() as session, session.begin():
        before = (await revision_files(session, draft)).get(path)
        await put_draft_file(session, draft, path, data)
        audit_entry(
            session,
            call,
            f"content/drafts/{draft}/{path}"[:128],
            None if before is None else {"bytes": len(before)},
            None if data is None else {"bytes": len(data)},
        )


async def publish_as(call: Call, draft: int) -> list[ContentProblem]:
    """Publish a draft that loads (its problems otherwise, and nothing changes); in force in this process at
    once, on the other replicas within ``content_poll_seconds``."""
    async with call.services.sessions() as session, session.begin():
        before = await live_revision(session)
        problems = await publish_draft(
            session, draft, content_registry(), who=_who(call), now=call.services.clock.now()
        )
        if not problems:
            audit_entry(session, call, "content/live", {"revision": before}, {"revision": draft})
    if not problems:
        await call.services.reloader.follow()
    return problems


async def roll_back_as(call: Call, to: int | None) -> int:
    """Make ``to`` (default: the previous published revision) live again; the revision now live."""
    async with call.services.sessions() as session, session.begin():
        before = await live_revision(session)
        live = await rollback(session, to=to, who=_who(call), now=call.services.clock.now())
        audit_entry(session, call, "content/live", {"revision": before}, {"revision": live})
    await call.services.reloader.follow()
    return live


async def discard_as(call: Call, draft: int) -> None:
    async with call.services.sessions() as session, session.begin():
        await discard_draft(session, draft)
        audit_entry(session, call, f"content/drafts/{draft}", {"state": "draft"}, {"state": "discarded"})


# --- the routes ---


async def new_draft(call: Call) -> web.Response:
    body = await json_body(call.request) if call.request.can_read_body else {}
    message = body.get("message", "") if isinstance(body, dict) else ""
    if not isinstance(message, str) or len(message) > 500:
        raise invalid("message", "must be a string of at most 500 characters")
    try:
        draft = await start_draft(call, message)
    except RevisionError as exc:
        raise _refused(exc) from None
    return json_response(info_json(await _info(call, draft)), status=201)


async def put_file(call: Call) -> web.Response:
    draft, path = call.int_param("id"), call.param("path")
    data = await call.request.read()
    if len(data) > MAX_FILE_BYTES:
        raise invalid("body", f"at most {MAX_FILE_BYTES} bytes")
    return await _write_file(call, draft, path, data)


async def delete_file(call: Call) -> web.Response:
    return await _write_file(call, call.int_param("id"), call.param("path"), None)


async def _write_file(call: Call, draft: int, path: str, data: bytes | None) -> web.Response:
    try:
        await write_draft_file(call, draft, path, data)
    except RevisionError as exc:
        raise _refused(exc) from None
    return json_response(info_json(await _info(call, draft)))


async def draft_problems(call: Call) -> web.Response:
    draft = call.int_param("id")
    async with call.services.sessions() as session:
        files = await revision_files(session, draft)
    if not files:
        raise not_found(f"revision {draft}")
    _, problems = check_files(files, content_registry())
    return json_response({"revision": draft, "problems": problems_json(problems)})


async def draft_diff(call: Call) -> web.Response:
    draft = call.int_param("id")
    async with call.services.sessions() as session:
        live = await live_revision(session)
        new = await revision_files(session, draft)
        old = await revision_files(session, live) if live is not None else {}
    if not new:
        raise not_found(f"revision {draft}")
    lines = diff_files(old, new, f"live-{live}", f"draft-{draft}")
    return json_response({"live": live, "revision": draft, "diff": "".join(lines)})


async def publish(call: Call) -> web.Response:
    draft = call.int_param("id")
    try:
        problems = await publish_as(call, draft)
    except RevisionError as exc:
        raise _refused(exc) from None
    if problems:
        errors = [{"field": f"{p.file}:{p.key}" if p.key else p.file, "reason": p.reason} for p in problems]
        raise Problem(422, "Content problems", f"{len(problems)} problem(s): nothing was published", errors=errors)
    return json_response(info_json(await _info(call, draft)))


async def roll_back(call: Call) -> web.Response:
    body = await json_body(call.request) if call.request.can_read_body else {}
    to = body.get("revision") if isinstance(body, dict) else None
    if to is not None and (not isinstance(to, int) or isinstance(to, bool)):
        raise invalid("revision", "must be a revision id or null")
    try:
        live = await roll_back_as(call, to)
    except RevisionError as exc:
        raise _refused(exc) from None
    return json_response(info_json(await _info(call, live)))


REVISION: Schema = obj(
    {
        "id": INT,
        "parent_id": nullable("integer"),
        "state": {"enum": ["draft", "published", "discarded"]},
        "digest": STR,
        "author": STR,
        "message": STR,
        "created_at": TIME,
        "published_at": NTIME,
        "published_by": NSTR,
        "live": BOOL,
    }
)
CONTENT_PROBLEM: Schema = obj({"file": STR, "key": STR, "reason": STR})
SCHEMAS: dict[str, Schema] = {
    "Revision": REVISION,
    "RevisionList": obj({"live": nullable("integer"), "items": {"type": "array", "items": ref("Revision")}}),
    "RevisionDetail": obj(
        {
            **REVISION["properties"],
            "files": {"type": "array", "items": obj({"path": STR, "bytes": INT})},
        }
    ),
    "DraftRequest": {"type": "object", "properties": {"message": STR}, "additionalProperties": False},
    "DraftProblems": obj({"revision": INT, "problems": {"type": "array", "items": ref("ContentProblem")}}),
    "ContentProblem": CONTENT_PROBLEM,
    "DraftDiff": obj({"live": nullable("integer"), "revision": INT, "diff": STR}),
    "RollbackRequest": {
        "type": "object",
        "properties": {"revision": nullable("integer")},
        "additionalProperties": False,
    },
}

ROUTES: tuple[Route, ...] = (
    Route(
        "GET", "/content/revisions", "read", list_revisions, "Content revisions, newest first", {200: "RevisionList"}
    ),
    Route(
        "GET",
        f"/content/revisions/{_REV}",
        "read",
        revision,
        "One revision and its files",
        {200: "RevisionDetail", 404: "Problem"},
    ),
    Route(
        "GET",
        f"/content/revisions/{_REV}/files/{_PATH}",
        "read",
        revision_file,
        "One file of a revision, as stored (TOML as text)",
        {200: None, 404: "Problem"},
    ),
    Route(
        "POST",
        "/content/drafts",
        "write",
        new_draft,
        "A draft copied from the live revision",
        {201: "Revision", 409: "Problem"},
        body="DraftRequest",
    ),
    Route(
        "PUT",
        f"/content/drafts/{_REV}/files/{_PATH}",
        "write",
        put_file,
        "Replace one file of a draft (the request body is the file)",
        {200: "Revision", 409: "Problem"},
    ),
    Route(
        "DELETE",
        f"/content/drafts/{_REV}/files/{_PATH}",
        "write",
        delete_file,
        "Remove one file from a draft",
        {200: "Revision", 409: "Problem"},
    ),
    Route(
        "GET",
        f"/content/drafts/{_REV}/problems",
        "read",
        draft_problems,
        "Check a draft as the server would load it (file, key, reason)",
        {200: "DraftProblems", 404: "Problem"},
    ),
    Route(
        "GET",
        f"/content/drafts/{_REV}/diff",
        "read",
        draft_diff,
        "A unified diff of the draft against the live revision",
        {200: "DraftDiff", 404: "Problem"},
    ),
    Route(
        "POST",
        f"/content/drafts/{_REV}/publish",
        "admin",
        publish,
        "Publish a draft that loads: every replica switches to it",
        {200: "Revision", 409: "Problem", 422: "Problem"},
    ),
    Route(
        "POST",
        "/content/rollback",
        "admin",
        roll_back,
        "Make the previous (or the given) published revision live again",
        {200: "Revision", 409: "Problem"},
        body="RollbackRequest",
    ),
)
