"""Shared pieces of the simulated API: the request object, errors, routes and field checks.

Error codes come from the WeCom global errcode table ([W:90313], mirrored with its hints in the Go
package ``errcodes`` of zsmhub/workweixin) and the Official Account common errcode table
(developers.weixin.qq.com ``commErrCode``). Each handler docstring names the code it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.simulator.errors import ApiError as ApiError
from bot.simulator.errors import Platform as Platform

if TYPE_CHECKING:
    from bot.simulator.state import SimState


# WeCom global errcodes used in several modules ([W:90313]).
INVALID_PARAM = 40058  # 不合法的参数
INVALID_USERID = 40003  # 无效的UserID
INVALID_EXTERNAL_USERID = 40096  # 不合法的外部联系人userid
NO_EXTERNAL_RELATION = 84061  # 不存在外部联系人的关系
INVALID_TAG_ID = 40068  # 不合法的标签ID
CHAT_NOT_FOUND = 40050  # chatid不存在
API_LIMIT = 45009  # 接口调用超过限制


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a ``multipart/form-data`` call (``media/upload``)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ApiRequest:
    """One parsed API call: query without ``access_token`` and the JSON body (``{}`` when none).

    ``files`` holds the file parts of a multipart call by field name; ``origin`` is the scheme and host
    the call came in on (``http://127.0.0.1:PORT``), for URLs the simulator serves itself.
    """

    platform: Platform
    api: str
    method: str
    query: Mapping[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    files: Mapping[str, UploadedFile] = field(default_factory=dict)
    origin: str = ""


Handler = Callable[["SimState", ApiRequest], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """How one endpoint is served.

    ``envelope``: add ``errcode: 0, errmsg: "ok"`` to a successful answer. Every WeCom API does;
    several Official Account APIs (``token``, ``stable_token``, ``tags/create``, ``tags/get``,
    ``qrcode/create``, ``user/info``) answer with the bare payload on success.
    """

    handler: Handler
    methods: frozenset[str] = frozenset({"POST"})
    auth: bool = True
    envelope: bool = True


POST = frozenset({"POST"})
GET = frozenset({"GET"})


def need_str(body: Mapping[str, Any], key: str, errcode: int = INVALID_PARAM, *, max_len: int = 0) -> str:
    """A required non-empty string field; ``max_len`` (characters) when the doc sets one."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(errcode, f"invalid or missing {key}")
    if max_len and len(value) > max_len:
        raise ApiError(INVALID_PARAM, f"{key} exceeds {max_len} characters")
    return value


def opt_str(body: Mapping[str, Any], key: str, *, max_len: int = 0) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(INVALID_PARAM, f"{key} must be a string")
    if max_len and len(value) > max_len:
        raise ApiError(INVALID_PARAM, f"{key} exceeds {max_len} characters")
    return value


def str_list(body: Mapping[str, Any], key: str, *, max_items: int = 0) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(INVALID_PARAM, f"{key} must be a list of strings")
    if max_items and len(value) > max_items:
        raise ApiError(INVALID_PARAM, f"{key} holds more than {max_items} items")
    return list(value)


def opt_int(body: Mapping[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(INVALID_PARAM, f"{key} must be an integer")
    return value


def need_dict(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise ApiError(INVALID_PARAM, f"invalid or missing {key}")
    return value
