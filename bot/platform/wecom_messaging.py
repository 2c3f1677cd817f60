"""WeCom messaging APIs: group-send tasks, 微信客服 (kf) and app messages.

Split from :mod:`bot.platform.wecom` to keep modules small; :class:`~bot.platform.wecom.WeComClient`
is the class to use. Doc pages are cited as ``[W:<id>]``; platform facts are in docs/platform.md.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence

from bot.platform.base import JsonObject, PlatformClient, drop_none

Attachment = Mapping[str, object]
MAX_ATTACHMENTS = 9


class WeComMessaging(PlatformClient):
    """Sending side of the WeCom client (group-send tasks, kf, app messages)."""

    @property
    @abstractmethod
    def agent_id(self) -> int:
        """The app (agent) id that app messages are sent as."""

    async def add_msg_template(
        self,
        chat_type: str,
        *,
        sender: str | None = None,
        external_userid: Sequence[str] = (),
        chat_id_list: Sequence[str] = (),
        text: str | None = None,
        attachments: Sequence[Attachment] = (),
        allow_select: bool | None = None,
    ) -> JsonObject:
        """Create a group-send *task* [W:92135]
        (docs/platform.md#group-send-tasks): nothing is sent until the member confirms it.

        ``chat_type`` ``single`` or ``group`` (``group`` needs ``sender``; ≤ 2000 chat ids); ≤ 9
        attachments; each customer/group receives a capped number per month. Not idempotent:
        reconcile with :meth:`get_groupmsg_task` before re-sending. Returns ``msgid``, ``fail_list``.
        """
        if chat_type not in {"single", "group"}:
            raise ValueError("chat_type must be 'single' or 'group'")
        if chat_type == "group" and not sender:
            raise ValueError("a group send task needs sender (the group owner)")
        if not text and not attachments:
            raise ValueError("add_msg_template needs text or attachments")
        check_attachments(attachments)
        body = drop_none(
            chat_type=chat_type,
            sender=sender,
            external_userid=list(external_userid) or None,
            chat_id_list=list(chat_id_list) or None,
            allow_select=allow_select,
            text={"content": text} if text else None,
            attachments=list(attachments) or None,
        )
        return await self.call("externalcontact/add_msg_template", body)

    async def get_groupmsg_task(self, msgid: str, limit: int | None = None, cursor: str | None = None) -> JsonObject:
        """Per-member execution of a group send [W:93338]: ``task_list[]`` (status 0 not sent, 2 sent).

        ``limit`` ≤ 1000 (default 500); page with ``next_cursor``.
        """
        body = drop_none(msgid=msgid, limit=limit, cursor=cursor)
        return await self.call("externalcontact/get_groupmsg_task", body)

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, limit: int | None = None, cursor: str | None = None
    ) -> JsonObject:
        """Per-customer/group result of one member's send [W:93338]
        (docs/platform.md#group-send-tasks): ``send_list[]``.

        Status 0 not sent, 1 sent, 2 not a friend, 3 already got another group send; group sends list
        only sent groups. ``limit`` ≤ 1000 (default 500).
        """
        body = drop_none(msgid=msgid, userid=userid, limit=limit, cursor=cursor)
        return await self.call("externalcontact/get_groupmsg_send_result", body)

    async def remind_groupmsg_send(self, msgid: str) -> JsonObject:
        """Re-notify members of a pending group send [W:97610]: ≤ 3 reminders per message per 24 h."""
        return await self.call("externalcontact/remind_groupmsg_send", {"msgid": msgid})

    async def kf_sync_msg(
        self,
        open_kfid: str,
        *,
        cursor: str | None = None,
        token: str | None = None,
        limit: int = 1000,
        voice_format: int | None = None,
    ) -> JsonObject:
        """Pull 微信客服 messages [W:94670]
        (docs/platform.md#wecom-kf): last 3 days, ``has_more``/``next_cursor`` paging.

        Pass the callback's ``token`` (valid 10 min); without it the call is strictly rate-limited.
        """
        if not 1 <= limit <= 1000:
            raise ValueError("kf_sync_msg limit must be 1..1000")
        body = drop_none(cursor=cursor, token=token, limit=limit, voice_format=voice_format, open_kfid=open_kfid)
        return await self.call("kf/sync_msg", body)

    async def kf_send_msg(
        self,
        touser: str,
        open_kfid: str,
        msgtype: str,
        content: Mapping[str, object],
        msgid: str | None = None,
    ) -> JsonObject:
        """Reply in a 微信客服 session
        (docs/platform.md#wecom-kf): ≤ 5 messages within 48 h of the customer's last message.

        ``content`` is the body under ``msgtype`` (e.g. ``{"content": "hi"}`` for text); ``msgid``
        is an optional caller-chosen id.
        """
        body = drop_none(touser=touser, open_kfid=open_kfid, msgid=msgid, msgtype=msgtype)
        body[msgtype] = dict(content)
        return await self.call("kf/send_msg", body)

    async def message_send(
        self,
        msgtype: str,
        content: Mapping[str, object],
        *,
        touser: Sequence[str] = (),
        toparty: Sequence[str] = (),
        totag: Sequence[str] = (),
        safe: int | None = None,
    ) -> JsonObject:
        """App message to staff [W:90236] (docs/platform.md#app-messages), sent as this config's ``agent_id``.

        Per member ≤ 30/min and 1000/hour from one app — excess is dropped silently, not an error.
        Recipients outside the app's visibility come back in ``invaliduser``/``invalidparty``.
        """
        if not (touser or toparty or totag):
            raise ValueError("message_send needs touser, toparty or totag")
        body = drop_none(
            touser="|".join(touser) or None,
            toparty="|".join(toparty) or None,
            totag="|".join(totag) or None,
            agentid=self.agent_id,
            msgtype=msgtype,
            safe=safe,
        )
        body[msgtype] = dict(content)
        return await self.call("message/send", body)


def check_attachments(attachments: Sequence[Attachment]) -> None:
    """Welcome messages and group-send tasks take at most 9 attachments
    (docs/platform.md#welcome-messages, #group-send-tasks)."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValueError(f"at most {MAX_ATTACHMENTS} attachments")
