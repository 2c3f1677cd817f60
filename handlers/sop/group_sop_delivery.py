"""What each honest delivery mode sends (docs/platform.md#no-bot-in-customer-groups).

* ``wecom_task_group`` — ``externalcontact/add_msg_template`` chat_type ``group`` [W:92135]
  (docs/platform.md#group-send-tasks): one
  task per owner (``sender`` is required) for up to 2000 of that owner's groups; nothing is posted until
  the owner confirms in the client; at most 9 attachments.
* ``app_to_owner`` — ``message/send`` text to the owner (docs/platform.md#app-messages): the content, its links and the
  names of the groups to post in; the owner posts by hand.
* ``group_robot`` — ``webhook/send``
  (docs/platform.md#group-robots), text ≤ 2048 bytes, 20 messages a minute per robot; sent
  through :class:`handlers.sop.group_sop_robots.RobotCaller` so the webhook key never reaches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.content import Message, choose_variant, local_time_of, render
from bot.content.render import Rendered
from bot.context import Context
from handlers.growth.synced import MEDIA, all_remote_ids

MAX_CHAT_IDS = 2000  # add_msg_template chat_id_list (docs/platform.md#group-send-tasks)
MAX_ATTACHMENTS = 9  # add_msg_template attachments (docs/platform.md#group-send-tasks)
ROBOT_TEXT_BYTES = 2048  # webhook text (docs/platform.md#group-robots)
APP_TEXT_BYTES = 2048  # message/send text (docs/platform.md#app-messages / [W:90236])
TASK_CREATED = "group_sop.task_created"
DELIVERED = "group_sop.delivered"


async def render_post(ctx: Context, message: Message) -> Rendered:
    """A variant of ``message`` for the fire's local time; group posts have no per-customer variables."""
    variant = choose_variant(message, ctx.rng, local_time_of(ctx.now(), ctx.settings.tz))
    media = await all_remote_ids(ctx.session, MEDIA)
    return render(variant, {}, ctx.content.fallbacks, media)


def task_body(rendered: Rendered, owner: str, chat_ids: Sequence[str]) -> dict[str, Any]:
    """The ``add_msg_template`` request for one owner's groups."""
    body: dict[str, Any] = {"chat_type": "group", "sender": owner, "chat_id_list": list(chat_ids)}
    if rendered.text:
        body["text"] = {"content": rendered.text}
    if rendered.attachments:
        body["attachments"] = [dict(a) for a in rendered.attachments[:MAX_ATTACHMENTS]]
    return body


def _links(rendered: Rendered) -> list[str]:
    out = []
    for attachment in rendered.attachments:
        link = attachment.get("link")
        if attachment.get("msgtype") == "link" and isinstance(link, dict) and link.get("url"):
            out.append(f"{link.get('title') or ''} {link['url']}".strip())
    return out


def _clip(text: str, max_bytes: int) -> str:
    raw = text.encode()
    return text if len(raw) <= max_bytes else raw[: max_bytes - 3].decode(errors="ignore") + "…"


def owner_message_body(rendered: Rendered, owner: str, agent_id: int, group_names: Sequence[str]) -> dict[str, Any]:
    """The ``message/send`` text asking the owner to post ``rendered`` in their groups."""
    names = "、".join(group_names[:20]) + (f" 等 {len(group_names)} 个群" if len(group_names) > 20 else "")
    parts = [f"请在以下群里发送：{names}", rendered.text, *_links(rendered)]
    text = _clip("\n\n".join(p for p in parts if p), APP_TEXT_BYTES)
    return {"touser": owner, "msgtype": "text", "agentid": agent_id, "text": {"content": text}}


def robot_body(rendered: Rendered) -> dict[str, Any]:
    """The ``webhook/send`` text: the content and its links (robots cannot send our link cards as-is)."""
    text = "\n".join(p for p in [rendered.text, *_links(rendered)] if p)
    return {"msgtype": "text", "text": {"content": _clip(text, ROBOT_TEXT_BYTES)}}
