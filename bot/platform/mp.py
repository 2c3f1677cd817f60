"""Official Account (公众号) server API: customer-service messages, user tags, QR codes, templates.

Doc pages are cited as ``[MP:<path>]`` = developers.weixin.qq.com/<path> (the official Official Account
documentation; docs/platform.md summarises what the code relies on). Daily quotas per account are on the official
page "接口调用频次限制说明" (API call limits).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import aiohttp

from bot.clock import Clock
from bot.config import OfficialAccountConfig
from bot.platform.base import JsonObject, PlatformClient, _decode, drop_none
from bot.platform.errors import CredentialsRejected, TokenInvalid, TransportError, redact
from bot.platform.tokens import TokenStore

FORCE_REFRESH_SPACING_SECONDS = 30.0
BATCH_TAGGING_MAX = 50


class MpClient(PlatformClient):
    """One Official Account; its token key is ``mp:<app_id>``.

    Tokens come from ``stable_token`` [MP:doc/service/api/base/api_getstableaccesstoken]
    (docs/platform.md#oa-tokens-and-quotas): in
    normal mode every replica gets the same token while it is valid, so replicas never invalidate each
    other. ``force_refresh`` (20/day, ≥ 30 s apart) is used only when the platform rejects a token and
    then hands the same one back.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        cfg: OfficialAccountConfig,
        tokens: TokenStore,
        clock: Clock,
        *,
        timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self._cfg = cfg
        self._rejected: str | None = None
        key = f"mp:{cfg.app_id}"
        self._force_key = f"{key}:force_refresh"
        super().__init__(session, cfg.api_base_url, tokens, key, clock, timeout=timeout, rng=rng)

    async def _on_token_invalid(self, bad_token: str) -> None:
        # The store is re-read first (TokenManager.refresh); a fetch remembers which token failed.
        self._rejected = bad_token
        try:
            await self.token_manager.refresh(bad_token)
        finally:
            self._rejected = None

    async def _fetch_token(self) -> tuple[str, int]:
        token, expires_in = await self._stable_token(force=False)
        rejected, self._rejected = self._rejected, None
        if token == rejected and await self._may_force_refresh():
            token, expires_in = await self._stable_token(force=True)
        return token, expires_in

    async def _may_force_refresh(self) -> bool:
        """Enforce ≥ 30 s between forced refreshes across replicas.

        A lease on a separate key is taken and deliberately never released: it expires after 30 s, and
        until then no replica may force again. (The platform's own cap is 20 per day.)
        """
        return await self._store.try_lease(self._force_key, self.token_manager.owner, FORCE_REFRESH_SPACING_SECONDS)

    async def _stable_token(self, *, force: bool) -> tuple[str, int]:
        secret = self._cfg.app_secret.get()
        body = {
            "grant_type": "client_credential",
            "appid": self._cfg.app_id,
            "secret": secret,
            "force_refresh": force,
        }
        return await self._token_request("stable_token", "POST", None, body, hide=(secret,))

    async def custom_send(
        self,
        openid: str,
        msgtype: str,
        content: Mapping[str, object],
        kf_account: str | None = None,
    ) -> JsonObject:
        """Customer-service message [MP:doc/service/api/customer/message/api_sendcustommessage]
        (docs/platform.md#customer-service-messages).

        Only inside a window the user opened: 5 messages / 48 h after a user message, 3 / 1 min after a
        follow, scan or menu click. 45015 → :class:`OutOfWindow`, 45047 → :class:`SendQuotaExceeded`.
        ``content`` is the body under ``msgtype`` (``{"content": "hi"}`` for text); news: 1 article.
        """
        body: dict[str, object] = {"touser": openid, "msgtype": msgtype, msgtype: dict(content)}
        if kf_account:
            body["customservice"] = {"kf_account": kf_account}
        return await self.call("message/custom/send", body)

    async def batch_tagging(self, openids: Sequence[str], tagid: int) -> JsonObject:
        """Tag up to 50 users at once (40032 beyond that); a user carries ≤ 20 tags (45059).

        Page: [MP:doc/offiaccount/User_Management/User_Tag_Management.html].
        """
        if not 1 <= len(openids) <= BATCH_TAGGING_MAX:
            raise ValueError(f"batch_tagging takes 1 to {BATCH_TAGGING_MAX} openids")
        return await self.call("tags/members/batchtagging", {"openid_list": list(openids), "tagid": tagid})

    async def create_tag(self, name: str) -> JsonObject:
        """Create a user tag (name ≤ 30 chars); returns ``tag{id, name}``.

        Page: [MP:doc/offiaccount/User_Management/User_Tag_Management.html].
        """
        if not 1 <= len(name) <= 30:
            raise ValueError("tag name must be 1 to 30 characters")
        return await self.call("tags/create", {"tag": {"name": name}})

    async def get_tags(self) -> JsonObject:
        """All user tags of the account: ``tags[{id, name, count}]``.

        Page: [MP:doc/offiaccount/User_Management/User_Tag_Management.html].
        """
        return await self.call("tags/get", method="GET")

    async def qrcode_create_limit_str(self, scene_str: str) -> JsonObject:
        """Permanent string-scene QR code [MP:doc/service/api/qrcode/qrcodes/api_createqrcode.md]
        (docs/platform.md#parametric-qr-codes).

        ``scene_str`` 1–64 chars comes back as EventKey (``qrscene_`` prefixed on subscribe); ≤ 100,000
        permanent codes per account, 100,000 calls/day. Returns ``ticket`` and ``url``.
        """
        if not 1 <= len(scene_str) <= 64:
            raise ValueError("scene_str must be 1 to 64 characters")
        body = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene_str}}}
        return await self.call("qrcode/create", body)

    async def user_info(self, openid: str, lang: str = "zh_CN") -> JsonObject:
        """Follower info incl. ``subscribe_scene``, ``qr_scene_str`` for attribution
        (docs/platform.md#follow-and-scan-events).

        Page: [MP:doc/service/api/usermanage/userinfo/api_userinfo]; no nickname/avatar since 2021-12.
        """
        return await self.call("user/info", params={"openid": openid, "lang": lang}, method="GET")

    async def user_get(self, next_openid: str = "") -> JsonObject:
        """One page of ≤ 10,000 follower openids (docs/platform.md#customer-lists): ``total``, ``count``,
        ``data.openid[]``, ``next_openid`` (the page's last openid; the next call starts after it)."""
        params = {"next_openid": next_openid} if next_openid else None
        return await self.call("user/get", params=params, method="GET")

    async def user_info_batchget(self, openids: Sequence[str], lang: str = "zh_CN") -> JsonObject:
        """``user/info`` for 1..100 followers at once: ``user_info_list[]`` (docs/platform.md#customer-lists)."""
        if not 1 <= len(openids) <= 100:
            raise ValueError("user/info/batchget takes 1 to 100 openids")
        return await self.call("user/info/batchget", {"user_list": [{"openid": o, "lang": lang} for o in openids]})

    async def template_send(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Mapping[str, str]],
        *,
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
        client_msg_id: str | None = None,
    ) -> JsonObject:
        """Template message [MP:doc/service/api/notify/template/api_sendtemplatemessage.md]
        (docs/platform.md#template-messages).

        ``client_msg_id`` makes the send idempotent per openid for about 10 minutes — pass the outbox
        key. 43101: the user refused; 43004: the user must follow. Returns ``msgid``.
        """
        body = drop_none(
            touser=openid,
            template_id=template_id,
            url=url,
            miniprogram=None if miniprogram is None else dict(miniprogram),
            client_msg_id=client_msg_id,
            data={k: dict(v) for k, v in data.items()},
        )
        return await self.call("message/template/send", body)

    async def sns_oauth2_access_token(self, code: str) -> JsonObject:
        """Web authorisation (网页授权): exchange the ``code`` from the authorize redirect for the user.

        ``GET <api_base_url>/sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code``
        [MP:doc/offiaccount/OA_Web_Apps/Wechat_webpage_authorization.html]. Not under ``/cgi-bin`` and
        authenticated with the app secret, not the access_token. A code works once and for 5 minutes
        (40029 invalid code, 40163 code been used). Returns ``openid``, ``scope`` and a *web* access_token
        (unrelated to the basic token; snsapi_base needs nothing else from it).
        """
        secret = self._cfg.app_secret.get()
        params = {"appid": self._cfg.app_id, "secret": secret, "code": code, "grant_type": "authorization_code"}
        api, url = "sns/oauth2/access_token", f"{self._cfg.api_base_url.rstrip('/')}/sns/oauth2/access_token"
        failure: str | None = None
        try:
            async with self._session.get(url, params=params, timeout=self._timeout) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = f"{type(exc).__name__}: {redact(str(exc), secret, code)}"
        if failure is not None:
            raise TransportError(api, failure)
        if status != 200:
            raise TransportError(api, f"HTTP {status}")
        try:
            return _decode(api, raw, (secret, code))
        except TokenInvalid as exc:  # 40001 here means our app secret is wrong, not a token
            raise CredentialsRejected(api, exc.errcode, exc.errmsg) from None
