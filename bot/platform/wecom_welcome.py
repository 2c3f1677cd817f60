"""WeCom group welcome templates (入群欢迎语素材, [W:92366], docs/platform.md#group-welcome-templates).

Split from :mod:`bot.platform.wecom` to keep modules small; :class:`~bot.platform.wecom.WeComClient`
is the class to use. A template is text (``%NICKNAME%`` is replaced by the joiner's nickname,
case-sensitive) plus at most **one** of ``image`` / ``link`` / ``miniprogram`` / ``file`` / ``video``.
The corp library holds ≤ 100 templates; an app edits/deletes only the templates it created. There is
no per-join call: a group owner applies a template to a group in the client and WeCom sends it.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.platform.base import JsonObject, PlatformClient, drop_none
from bot.platform.errors import TransportError

TemplateAttachment = Mapping[str, Mapping[str, str]]
"""``{"link": {"title": …, "url": …}}``: one key, the attachment's type, with its fields
(docs/platform.md#group-welcome-templates)."""

TEMPLATE_TEXT_MAX_BYTES = 3000
TEMPLATE_TYPES = ("image", "link", "miniprogram", "file", "video")
# Byte limits of attachment fields [W:92366]: link title ≤ 128, desc ≤ 512; mini-program title ≤ 64.
TEMPLATE_BYTE_LIMITS = {("link", "title"): 128, ("link", "desc"): 512, ("miniprogram", "title"): 64}


def check_template(text: str | None, attachment: TemplateAttachment | None) -> None:
    """Raise ``ValueError`` for what WeCom would refuse: nothing at all, a text over 3000 bytes, more
    than one attachment type, an unknown type, or an attachment field over its byte limit."""
    if not text and not attachment:
        raise ValueError("a group welcome template needs text or an attachment")
    if text and len(text.encode()) > TEMPLATE_TEXT_MAX_BYTES:
        raise ValueError(f"template text is longer than {TEMPLATE_TEXT_MAX_BYTES} bytes")
    if attachment is None:
        return
    if len(attachment) != 1 or not set(attachment) <= set(TEMPLATE_TYPES):
        raise ValueError(f"a template takes exactly one of {', '.join(TEMPLATE_TYPES)}")
    for (kind, key), limit in TEMPLATE_BYTE_LIMITS.items():
        value = attachment.get(kind, {}).get(key)
        if value is not None and len(value.encode()) > limit:
            raise ValueError(f"{kind}.{key} is longer than {limit} bytes")


def _template_body(text: str | None, attachment: TemplateAttachment | None, notify: bool) -> dict[str, object]:
    check_template(text, attachment)
    body = drop_none(text={"content": text} if text else None, notify=1 if notify else 0)
    body.update({kind: dict(fields) for kind, fields in (attachment or {}).items()})
    return body


class GroupWelcomeTemplates(PlatformClient):
    """``externalcontact/group_welcome_template/{add,edit,get,del}`` (docs/platform.md#group-welcome-templates)."""

    async def add_group_welcome_template(
        self, text: str | None = None, attachment: TemplateAttachment | None = None, *, notify: bool = True
    ) -> str:
        """添加入群欢迎语素材 [W:92366] (docs/platform.md#group-welcome-templates) → the new ``template_id``.

        ``notify`` (default on, as on WeCom) asks members to apply the template to their groups. The
        library holds ≤ 100 templates; media ids come from ``media/upload`` (an image may use
        ``pic_url`` instead; a mini-program needs ``pic_media_id``).
        """
        api = "externalcontact/group_welcome_template/add"
        resp = await self.call(api, _template_body(text, attachment, notify))
        template_id = resp.get("template_id")
        if not isinstance(template_id, str) or not template_id:
            raise TransportError(api, "response without template_id")
        return template_id

    async def edit_group_welcome_template(
        self,
        template_id: str,
        text: str | None = None,
        attachment: TemplateAttachment | None = None,
        *,
        notify: bool = False,
    ) -> JsonObject:
        """编辑入群欢迎语素材 [W:92366]
        (docs/platform.md#group-welcome-templates): ``template_id`` plus the same fields as add; only a
        template this app created can be edited. ``notify`` defaults to off: groups already use it."""
        body = {"template_id": template_id, **_template_body(text, attachment, notify)}
        return await self.call("externalcontact/group_welcome_template/edit", body)

    async def get_group_welcome_template(self, template_id: str) -> JsonObject:
        """获取入群欢迎语素材 [W:92366]
        (docs/platform.md#group-welcome-templates): ``text`` and the attachment field of one template."""
        return await self.call("externalcontact/group_welcome_template/get", {"template_id": template_id})

    async def del_group_welcome_template(self, template_id: str) -> JsonObject:
        """删除入群欢迎语素材 [W:92366]
        (docs/platform.md#group-welcome-templates); only a template this app created can be deleted."""
        return await self.call("externalcontact/group_welcome_template/del", {"template_id": template_id})
