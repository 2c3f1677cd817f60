"""WeCom (企业微信) server API: customer contact, channel codes, group-send tasks, kf, app messages,
group welcome templates (``add/edit/get/del_group_welcome_template``,
docs/platform.md#group-welcome-templates, in :mod:`.wecom_welcome`).

Doc pages are cited as ``[W:<id>]`` = developer.work.weixin.qq.com/document/path/<id> (the official
WeCom server API documentation; docs/platform.md summarises the facts the code relies on, by
topic). Every API shares the per-corp limit of 10,000 calls/min and 150,000/hour
per single API (访问频率限制 [W:90454]); endpoint-specific limits are named below.
"""

from __future__ import annotations

import io
import random
from collections.abc import Mapping, Sequence
from typing import TypedDict

import aiohttp

from bot.clock import Clock
from bot.config import WeComConfig
from bot.platform.base import JsonObject, drop_none
from bot.platform.errors import TransportError
from bot.platform.tokens import TokenStore
from bot.platform.wecom_messaging import Attachment, WeComMessaging, check_attachments
from bot.platform.wecom_welcome import GroupWelcomeTemplates

STATE_MAX_CHARS = 30
MEDIA_TTL_SECONDS = 3 * 86400  # a temporary media_id is valid 3 days [W:90253]
MEDIA_MIN_BYTES = 6  # "所有文件size必须大于5个字节"
MEDIA_MAX_BYTES = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}
UPLOAD_TIMEOUT = 120.0  # a 20 MB file on a slow uplink


class TempSession(TypedDict, total=False):
    """「联系我」 temporary-session settings
    (docs/platform.md#contact-me-codes; medical-industry corps only, ≤ 100,000 codes/day)."""

    expires_in: int  # QR validity, default 7 days, max 14 days
    chat_expires_in: int  # chat validity after adding, default 24 h, max 14 days
    unionid: str  # only this WeChat user may use the code
    conclusions: Mapping[str, object]  # closing message sent when the session ends


class WeComClient(WeComMessaging, GroupWelcomeTemplates):
    """One WeCom app (corp id + secret + agent id); its token key is ``wecom:<corp_id>:<agent_id>``.

    Group welcome templates
    (docs/platform.md#group-welcome-templates): :meth:`add_group_welcome_template`, :meth:`edit_group_welcome_template`,
    :meth:`get_group_welcome_template`, :meth:`del_group_welcome_template`.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        cfg: WeComConfig,
        tokens: TokenStore,
        clock: Clock,
        *,
        timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self._cfg = cfg
        key = f"wecom:{cfg.corp_id}:{cfg.agent_id}"
        super().__init__(session, cfg.api_base_url, tokens, key, clock, timeout=timeout, rng=rng)

    @property
    def agent_id(self) -> int:
        return self._cfg.agent_id

    async def _fetch_token(self) -> tuple[str, int]:
        """``GET /cgi-bin/gettoken`` [W:91039]: 7200 s tokens; frequent calls get the corp blocked."""
        secret = self._cfg.secret.get()
        params = {"corpid": self._cfg.corp_id, "corpsecret": secret}
        return await self._token_request("gettoken", "GET", params, None, hide=(secret,))

    async def send_welcome_msg(
        self, welcome_code: str, text: str | None = None, attachments: Sequence[Attachment] = ()
    ) -> JsonObject:
        """Welcome a new customer [W:92137] (docs/platform.md#welcome-messages).

        The code is valid for 20 s and works once: 41051 → :class:`WelcomeCodeUsed` (final), 41096 →
        :class:`WelcomeBeingDistributed`. At most 9 attachments; text and attachments not both empty.
        """
        if not text and not attachments:
            raise ValueError("send_welcome_msg needs text or attachments")
        check_attachments(attachments)
        body = drop_none(
            welcome_code=welcome_code,
            text={"content": text} if text else None,
            attachments=list(attachments) or None,
        )
        return await self.call("externalcontact/send_welcome_msg", body)

    async def upload_media(self, kind: str, filename: str, data: bytes) -> tuple[str, int]:
        """上传临时素材 ``POST media/upload?type=<kind>`` [W:90253]: multipart, file field ``media``.

        ``kind`` image (≤ 10 MB, JPG/PNG), voice (≤ 2 MB AMR), video (≤ 10 MB MP4) or file (≤ 20 MB);
        every file must be larger than 5 bytes. ``filename`` is what recipients see for a file. Returns
        ``(media_id, created_at)`` — the id is valid **3 days** from ``created_at`` (epoch seconds;
        WeCom documents it as a string, the Official Account as a number: both are accepted).
        """
        if kind not in MEDIA_MAX_BYTES:
            raise ValueError(f"media type must be one of {', '.join(MEDIA_MAX_BYTES)}")
        if not MEDIA_MIN_BYTES <= len(data) <= MEDIA_MAX_BYTES[kind]:
            limit = MEDIA_MAX_BYTES[kind] >> 20
            raise ValueError(f"a {kind} upload must be 6 bytes to {limit} MB (got {len(data)} bytes)")

        def form() -> aiohttp.FormData:
            body = aiohttp.FormData()
            # BytesIO: aiohttp streams it (raw bytes over 1 MiB would be sent in one blocking write).
            media = io.BytesIO(data)
            body.add_field("media", media, filename=filename, content_type="application/octet-stream")
            return body

        api = "media/upload"
        resp = await self.call_multipart(api, form, {"type": kind}, timeout=UPLOAD_TIMEOUT)
        media_id, created_at = resp.get("media_id"), resp.get("created_at")
        if isinstance(created_at, str) and created_at.isdigit():
            created_at = int(created_at)
        if not isinstance(media_id, str) or not media_id or isinstance(created_at, bool):
            raise TransportError(api, "response without media_id")
        if not isinstance(created_at, int):
            raise TransportError(api, "response without a numeric created_at")
        return media_id, created_at

    async def mark_tag(
        self,
        userid: str,
        external_userid: str,
        add_tag: Sequence[str] = (),
        remove_tag: Sequence[str] = (),
    ) -> JsonObject:
        """Edit the corp tags a member put on a customer [W:92697] (docs/platform.md#corp-tags).

        ``add_tag``/``remove_tag`` not both empty; ≤ 3000 tags per member on one customer. API tag
        changes produce no ``change_external_tag`` callback.
        """
        if not add_tag and not remove_tag:
            raise ValueError("mark_tag needs add_tag or remove_tag")
        body = {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add_tag),
            "remove_tag": list(remove_tag),
        }
        return await self.call("externalcontact/mark_tag", body)

    async def get_external_contact(self, external_userid: str, cursor: str | None = None) -> JsonObject:
        """Customer detail with ``follow_user[]`` (``state``, ``add_way``, tags) [W:96315]
        (docs/platform.md#group-detail).

        Paginated by ``cursor`` when the customer has more than 500 followers.
        """
        params: dict[str, str | int] = {"external_userid": external_userid}
        if cursor:
            params["cursor"] = cursor
        return await self.call("externalcontact/get", params=params, method="GET")

    async def groupchat_get(self, chat_id: str, need_name: int = 1) -> JsonObject:
        """Customer-group detail; ``member_list[].state`` is the join-way channel [W:96338]
        (docs/platform.md#group-detail).

        Data is updated asynchronously after change events.
        """
        return await self.call("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": need_name})

    async def get_follow_user_list(self) -> list[str]:
        """The members with the customer-contact feature [W:92571] (docs/platform.md#customer-lists)."""
        resp = await self.call("externalcontact/get_follow_user_list", method="GET")
        users = resp.get("follow_user")
        return [u for u in users if isinstance(u, str)] if isinstance(users, list) else []

    async def batch_get_by_user(self, userids: Sequence[str], cursor: str = "", limit: int = 100) -> JsonObject:
        """One page of the customers of ≤ 100 members [W:92994] (docs/platform.md#customer-lists):
        ``external_contact_list[{external_contact, follow_info}]`` and ``next_cursor`` (``""`` at the end)."""
        if not 1 <= len(userids) <= 100 or not 1 <= limit <= 100:
            raise ValueError("batch/get_by_user takes 1 to 100 userids and a limit of 1 to 100")
        body = drop_none(userid_list=list(userids), cursor=cursor or None, limit=limit)
        return await self.call("externalcontact/batch/get_by_user", body)

    async def groupchat_list(self, cursor: str = "", limit: int = 1000) -> JsonObject:
        """One page of the customer groups [W:92120] (docs/platform.md#customer-lists):
        ``group_chat_list[{chat_id, status}]`` and ``next_cursor``; ``limit`` 1..1000."""
        if not 1 <= limit <= 1000:
            raise ValueError("groupchat/list takes a limit of 1 to 1000")
        body = drop_none(status_filter=0, cursor=cursor or None, limit=limit)
        return await self.call("externalcontact/groupchat/list", body)

    async def get_corp_tag_list(self, tag_id: Sequence[str] = (), group_id: Sequence[str] = ()) -> JsonObject:
        """The corp tag library [W:96320]
        (docs/platform.md#corp-tags): empty filters → all; with both, only ``group_id`` counts."""
        body = drop_none(tag_id=list(tag_id) or None, group_id=list(group_id) or None)
        return await self.call("externalcontact/get_corp_tag_list", body)

    async def add_corp_tag(
        self,
        tag: Sequence[Mapping[str, object]],
        *,
        group_id: str | None = None,
        group_name: str | None = None,
        order: int | None = None,
    ) -> JsonObject:
        """Add tags (``[{"name", "order"?}]``) to a group, or create the group [W:96320] (docs/platform.md#corp-tags).

        ≤ 3000 corp tags per corp; with ``group_id`` the group name/order are ignored; an app edits or
        deletes only tags it created.
        """
        if not tag:
            raise ValueError("add_corp_tag needs at least one tag (empty groups are not supported)")
        if group_id is None and not group_name:
            raise ValueError("add_corp_tag needs group_id or group_name")
        body = drop_none(group_id=group_id, group_name=group_name, order=order, tag=list(tag))
        return await self.call("externalcontact/add_corp_tag", body)

    async def add_contact_way(
        self,
        type: int,
        scene: int,
        *,
        user: Sequence[str] = (),
        party: Sequence[int] = (),
        state: str | None = None,
        remark: str | None = None,
        skip_verify: bool = True,
        style: int | None = None,
        is_exclusive: bool | None = None,
        temp_session: TempSession | None = None,
    ) -> JsonObject:
        """Create a 「联系我」 code [W:96348]
        (docs/platform.md#contact-me-codes); returns ``config_id`` (+ ``qr_code`` for scene 2).

        ``state`` ≤ 30 chars comes back in add-customer events; ≤ 500,000 codes per corp (shared
        with join-way codes); API-created codes are not shown in the admin console — keep config_id.
        ``temp_session`` sends ``is_temp: true`` with its settings (single member only).
        """
        if type == 1 and len(user) != 1:
            raise ValueError("add_contact_way type 1 needs exactly one user")
        _check_len("state", state, STATE_MAX_CHARS)
        _check_len("remark", remark, 30)
        body = drop_none(
            type=type,
            scene=scene,
            style=style,
            remark=remark,
            skip_verify=skip_verify,
            state=state,
            user=list(user) or None,
            party=list(party) or None,
            is_exclusive=is_exclusive,
        )
        if temp_session is not None:
            body.update(is_temp=True, **temp_session)
        return await self.call("externalcontact/add_contact_way", body)

    async def update_contact_way(
        self,
        config_id: str,
        *,
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
        state: str | None = None,
        user: Sequence[str] | None = None,
        party: Sequence[int] | None = None,
        temp_session: TempSession | None = None,
    ) -> JsonObject:
        """Update a 「联系我」 code [W:96348]
        (docs/platform.md#contact-me-codes); given ``user``/``party`` lists replace the old ones."""
        _check_len("state", state, STATE_MAX_CHARS)
        _check_len("remark", remark, 30)
        body = drop_none(
            config_id=config_id,
            remark=remark,
            skip_verify=skip_verify,
            style=style,
            state=state,
            user=None if user is None else list(user),
            party=None if party is None else list(party),
        )
        body.update(temp_session or {})
        return await self.call("externalcontact/update_contact_way", body)

    async def add_join_way(
        self,
        scene: int,
        chat_id_list: Sequence[str],
        *,
        remark: str | None = None,
        auto_create_room: int | None = None,
        room_base_name: str | None = None,
        room_base_id: int | None = None,
        state: str | None = None,
    ) -> JsonObject:
        """Create a 「加入群聊」 code for 1–5 groups [W:99547]
        (docs/platform.md#join-group-codes); returns ``config_id``.

        ``state`` ≤ 30 chars shows per member in ``groupchat/get``; ``room_base_name`` ≤ 40 chars;
        quota shared with 「联系我」 (500,000). Fetch the QR image URL with :meth:`get_join_way`.
        """
        if not 1 <= len(chat_id_list) <= 5:
            raise ValueError("add_join_way takes 1 to 5 chat ids")
        _check_len("state", state, STATE_MAX_CHARS)
        _check_len("room_base_name", room_base_name, 40)
        body = drop_none(
            scene=scene,
            remark=remark,
            auto_create_room=auto_create_room,
            room_base_name=room_base_name,
            room_base_id=room_base_id,
            chat_id_list=list(chat_id_list),
            state=state,
        )
        return await self.call("externalcontact/groupchat/add_join_way", body)

    async def get_join_way(self, config_id: str) -> JsonObject:
        """A join-way's settings and ``qr_code`` [W:99547]
        (docs/platform.md#join-group-codes); an app sees only codes it created."""
        return await self.call("externalcontact/groupchat/get_join_way", {"config_id": config_id})


def _check_len(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise ValueError(f"{name} must be at most {limit} characters")
