"""The simulated API server: ``/wecom/cgi-bin/...`` (WeCom) and ``/mp/cgi-bin/...`` (Official Account).

Point the bot at it with ``wecom.api_base_url = http://HOST:PORT/wecom`` and
``official_account.api_base_url = http://HOST:PORT/mp``. Every call is recorded in
``state.calls`` (see :meth:`bot.simulator.state.SimState.calls_to`).

Behaviour where the docs are thin (our choices):

* Unknown OA path → HTTP 200 ``{"errcode": 40066, "errmsg": "invalid url"}`` (OA common errcode
  table: "请检查API的URL是否与文档一致"). WeCom's global table has no such code, so an unknown WeCom
  path answers HTTP 404, like any unrouted URL.
* Wrong HTTP method → 43002 "require POST method" (OA table; used for both platforms).
* Body that is not a JSON object → 47001 "data format error" (OA table; used for both platforms).
* WeCom errmsgs end with ``more info at https://open.work.weixin.qq.com/devtool/query?e=CODE`` as
  the real platform's do; OA errmsgs carry a ``rid``.
* ``multipart/form-data`` calls (``media/upload``) reach the handler as ``ApiRequest.files``; the call
  is recorded with a summary of each file (name, length, content type), never its bytes.
* ``GET /wwpic/<name>`` serves the PNG behind a channel code's ``qr_code`` (simulator-only stand-in for
  WeCom's image host, see :func:`bot.simulator.wecom_channels.qr_image`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from bot.sim_clock import Advanceable, add_clock_routes
from bot.simulator import (
    mp_api,
    tokens,
    wecom_channels,
    wecom_contacts,
    wecom_lists,
    wecom_media,
    wecom_messages,
    wecom_robots,
    wecom_tags,
    wecom_transfers,
    wecom_welcome,
)
from bot.simulator.api import ApiError, ApiRequest, Platform, Route, UploadedFile
from bot.simulator.faults import LostAnswer
from bot.simulator.oauth import add_oauth_routes
from bot.simulator.state import RecordedCall, SimState

SIM_STATE: web.AppKey[SimState] = web.AppKey("sim_state", SimState)

ROUTES: dict[Platform, dict[str, Route]] = {
    "wecom": {
        **tokens.WECOM_ROUTES,
        **wecom_contacts.ROUTES,
        **wecom_lists.ROUTES,
        **wecom_tags.ROUTES,
        **wecom_channels.ROUTES,
        **wecom_messages.ROUTES,
        **wecom_media.ROUTES,
        **wecom_robots.ROUTES,
        **wecom_welcome.ROUTES,
        **wecom_transfers.ROUTES,
    },
    "mp": {**tokens.MP_ROUTES, **mp_api.ROUTES},
}


def make_sim_app(state: SimState) -> web.Application:
    """Build the aiohttp application serving both platforms from ``state``."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[SIM_STATE] = state
    app.router.add_route("*", "/{platform:wecom|mp}/cgi-bin/{api:.+}", _dispatch)
    app.router.add_get("/wwpic/{name}", _qr_image)
    add_oauth_routes(app, SIM_STATE)
    app.router.add_post("/_sim/staff/{userid}/depart", _depart)
    if isinstance(state.clock, Advanceable):  # simulated time: /_sim/clock (a rehearsing serve follows it)
        add_clock_routes(app, state.clock, state.tz)
    return app


async def _depart(request: web.Request) -> web.Response:
    """Test/operator control (simulator only): member ``userid`` leaves the corp (离职)."""
    state = request.app[SIM_STATE]
    try:
        wecom_transfers.depart(state, request.match_info["userid"])
    except KeyError:
        return web.json_response({"error": "unknown member"}, status=404)
    member = state.staff[request.match_info["userid"]]
    return web.json_response({"userid": member.userid, "dimission_time": member.dimission_time})


MAX_REQUEST_BYTES = 32 << 20  # above every upload limit, so oversized files get the platform's errcode


async def _qr_image(request: web.Request) -> web.Response:
    png = wecom_channels.qr_image(request.app[SIM_STATE], request.match_info["name"])
    if png is None:
        return web.Response(status=404, text="404 Not Found")
    return web.Response(body=png, content_type="image/png")


def _error_body(platform: Platform, err: ApiError, state: SimState) -> dict[str, Any]:
    if platform == "wecom":
        hint = f", more info at https://open.work.weixin.qq.com/devtool/query?e={err.errcode}"
    else:
        hint = f" rid: {state.new_id('', 8).lower()}-{state.new_id('', 8).lower()}"
    return {"errcode": err.errcode, "errmsg": err.errmsg + hint}


async def _read_body(request: web.Request) -> dict[str, Any] | None:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(47001, "data format error") from None
    if not isinstance(data, dict):
        raise ApiError(47001, "data format error")
    return data


async def _read_files(request: web.Request) -> dict[str, UploadedFile]:
    """The file parts of a multipart body (other parts are ignored, as no API here takes them)."""
    files: dict[str, UploadedFile] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, aiohttp.BodyPartReader) and part.name and part.filename is not None:
                data = await part.read(decode=False)
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                files[part.name] = UploadedFile(part.filename, content_type, bytes(data))
    except (ValueError, AssertionError):
        raise ApiError(47001, "data format error") from None
    return files


def _files_summary(files: dict[str, UploadedFile]) -> dict[str, Any]:
    return {
        name: {"filename": f.filename, "filelength": len(f.data), "content_type": f.content_type}
        for name, f in files.items()
    }


def _serve(state: SimState, route: Route, req: ApiRequest, token: str | None) -> dict[str, Any]:
    if req.method not in route.methods:
        raise ApiError(43002, "require POST method" if "POST" in route.methods else "require GET method")
    if route.auth:
        state.tokens.check(req.platform, token)
    wecom_transfers.settle(state)  # handovers whose 24 h have passed are decided before anything is read
    injected = state.take_injected(req.api)
    if injected is not None:
        raise injected
    payload = route.handler(state, req)
    return {"errcode": 0, "errmsg": "ok", **payload} if route.envelope else payload


def _record(
    state: SimState,
    request: web.Request,
    api: str,
    query: dict[str, str],
    body: dict[str, Any] | None,
    status: int,
    response: dict[str, Any],
    answer_lost: str | None = None,
) -> None:
    platform: Platform = "wecom" if request.match_info["platform"] == "wecom" else "mp"
    call = RecordedCall(
        state.now(), platform, request.method, api, request.path, query, body, status, response, answer_lost
    )
    state.calls.append(call)


async def _dispatch(request: web.Request) -> web.Response:
    state = request.app[SIM_STATE]
    platform: Platform = "wecom" if request.match_info["platform"] == "wecom" else "mp"
    api = request.match_info["api"]
    query = {k: v for k, v in request.query.items() if k != "access_token"}
    route = ROUTES[platform].get(api)
    if route is None and platform == "wecom":
        _record(state, request, api, query, None, 404, {})
        return web.Response(status=404, text="404 Not Found")
    body: dict[str, Any] | None = None
    files: dict[str, UploadedFile] = {}
    try:
        if request.content_type.startswith("multipart/"):
            files = await _read_files(request)
            body = _files_summary(files)
        else:
            body = await _read_body(request)
        if route is None:
            raise ApiError(40066, "invalid url")
        origin = f"{request.scheme}://{request.host}"
        req = ApiRequest(platform, api, request.method, query, {} if files else body or {}, files, origin)
        response = _serve(state, route, req, request.query.get("access_token"))
    except ApiError as err:
        response = _error_body(platform, err, state)
    lost = state.faults.take_lost_answer(api)
    _record(state, request, api, query, body, 200, response, lost.mode if lost else None)
    answer = web.json_response(response, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    if lost is not None:
        return await _lose(request, answer, lost)
    return answer


async def _lose(request: web.Request, answer: web.Response, lost: LostAnswer) -> web.Response:
    """The call was served; the caller never gets ``answer`` (:mod:`bot.simulator.faults`)."""
    if lost.mode == "timeout":
        await asyncio.sleep(lost.delay)  # real time: the client's own timeout runs on the loop's clock
        return answer  # into a connection the caller has given up on (or closed)
    transport = request.transport
    if transport is not None:
        transport.abort()  # no answer at all: the client sees the connection drop
    return answer  # aiohttp finds the transport closed and writes nothing
