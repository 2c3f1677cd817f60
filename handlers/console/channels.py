"""渠道: the channels of content/ with their 30-day figures (``stats channels``: adds, losses, welcomes,
the A/B split, 7-day retention) and each channel's QR code as a PNG for print (``channels qr``)."""

from __future__ import annotations

import io

import aiohttp
import segno
from aiohttp import web

from handlers.api import operations
from handlers.console.apicall import api_json, scope_of
from handlers.console.auth import Viewer, error_page, page
from handlers.console.core import CONSOLE
from handlers.console.i18n import t
from handlers.console.overview import day_start
from handlers.growth.stats import ChannelStats, channel_stats
from handlers.growth.sync.model import MP_QRCODE
from handlers.growth.sync.qr import SCALE, QrDownloadError, download_image, find_record, qr_payload
from handlers.growth.sync.records import RecordStore

STATS_DAYS = 30


@page(scope_of(operations.channels))
async def channels(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    console = request.app[CONSOLE]
    listed = await api_json(request, viewer, operations.channels)
    async with console.services.sessions() as session:
        stats = await channel_stats(session, console.now(), day_start(console, STATS_DAYS))
    rows = [(c, stats.get(c["code"]) or ChannelStats(c["code"])) for c in listed["items"]]
    return console.render("channels.html", viewer=viewer, nav="channels", rows=rows)


@page(scope_of(operations.channels))
async def qr_png(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The code as synced: an OA code drawn here from its URL; a WeCom code's image fetched from WeCom."""
    console = request.app[CONSOLE]
    code = request.match_info["code"]
    record = await find_record(RecordStore(console.services.sessions, console.services.clock), code)
    payload = None if record is None else qr_payload(record)
    if record is None or payload is None:
        return error_page(request, 404, t("error.not_found", what=f"{code} QR"), viewer)
    if record.kind == MP_QRCODE:
        out = io.BytesIO()
        segno.make(payload, error="m", micro=False).save(out, kind="png", scale=SCALE, border=4)
        data, ext = out.getvalue(), "png"
    else:
        try:
            async with aiohttp.ClientSession() as session:
                data, ext = await download_image(session, payload)
        except QrDownloadError as exc:
            return error_page(request, 502, str(exc), viewer)
    ext = "jpg" if ext == "jpeg" else ext
    disposition = f'attachment; filename="{code}.{ext}"'
    return web.Response(body=data, content_type=f"image/{'jpeg' if ext == 'jpg' else 'png'}",
                        headers={"Content-Disposition": disposition})  # fmt: skip
