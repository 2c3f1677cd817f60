"""内容 (read-only): the TOML files of the content directory this process serves, as they are on disk.

Editing stays in git (``content check`` / ``content sync``). Only ``*.toml`` files are listed (never the
coupon-code lists or media), and a file is opened only by a name from that listing.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from handlers.console.auth import Viewer, page
from handlers.console.core import CONSOLE

MAX_BYTES = 100_000


def toml_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.toml") if p.is_file() and not p.is_symlink())


@page("read")
async def content(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    root = Path(console.services.settings.content_dir)
    files = toml_files(root)
    chosen = request.query.get("file") or (files[0] if files else "")
    text = ""
    if chosen in files:  # a name from the listing only: no path from the request reaches the disk
        text = (root / chosen).read_bytes()[:MAX_BYTES].decode("utf-8", "replace")
    return console.render("content.html", viewer=viewer, nav="content", files=files, chosen=chosen, text=text)
