"""Callback plaintexts exactly as the platform writes them
(docs/platform.md#customer-events, #wecom-kf, #follow-and-scan-events).

Strings go in CDATA, numbers (``CreateTime``, ``JoinScene``, ``QuitScene``, ``MemChangeCnt``,
``MsgId``) bare; ``MemChangeList`` holds ``<Item>`` children. WeCom customer events come from
``FromUserName`` ``sys`` with ``ToUserName`` = CorpID; OA events go from the user's openid to the
account's original id (``gh_…``).
"""

from __future__ import annotations

from collections.abc import Sequence

Field = tuple[str, "str | int | Sequence[str] | None"]


def render(fields: Sequence[Field]) -> str:
    """Render ordered fields; ``None`` values are left out, lists become ``<Item>`` children."""
    parts = ["<xml>"]
    for key, value in fields:
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            parts.append(f"<{key}>{value}</{key}>")
        elif isinstance(value, str):
            parts.append(f"<{key}>{_cdata(value)}</{key}>")
        else:
            items = "".join(f"<Item>{_cdata(v)}</Item>" for v in value)
            parts.append(f"<{key}>{items}</{key}>")
    parts.append("</xml>")
    return "".join(parts)


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _wecom_head(corp_id: str, create_time: int, event: str) -> list[Field]:
    return [
        ("ToUserName", corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", event),
    ]


def contact_event(
    corp_id: str,
    create_time: int,
    change_type: str,
    userid: str,
    external_userid: str,
    *,
    state: str | None = None,
    welcome_code: str | None = None,
    source: str | None = None,
    fail_reason: str | None = None,
) -> str:
    """``change_external_contact`` (docs/platform.md#customer-events): add/edit/del/del_follow_user/transfer_fail …"""
    fields = _wecom_head(corp_id, create_time, "change_external_contact")
    fields += [
        ("ChangeType", change_type),
        ("UserID", userid),
        ("ExternalUserID", external_userid),
        ("State", state),
        ("WelcomeCode", welcome_code),
        ("Source", source),
        ("FailReason", fail_reason),
    ]
    return render(fields)


def chat_event(
    corp_id: str,
    create_time: int,
    chat_id: str,
    change_type: str,
    *,
    update_detail: str | None = None,
    join_scene: int | None = None,
    quit_scene: int | None = None,
    members: Sequence[str] = (),
    last_mem_ver: str | None = None,
    cur_mem_ver: str | None = None,
) -> str:
    """``change_external_chat``
    (docs/platform.md#customer-group-events): create / update (add_member, del_member, …) / dismiss."""
    fields = _wecom_head(corp_id, create_time, "change_external_chat")
    fields += [("ChatId", chat_id), ("ChangeType", change_type), ("UpdateDetail", update_detail)]
    fields += [("JoinScene", join_scene), ("QuitScene", quit_scene)]
    if members:
        fields += [("MemChangeCnt", len(members)), ("MemChangeList", list(members))]
    fields += [("LastMemVer", last_mem_ver), ("CurMemVer", cur_mem_ver)]
    return render(fields)


def tag_event(corp_id: str, create_time: int, tag_id: str, tag_type: str | None, change_type: str) -> str:
    """``change_external_tag`` (docs/platform.md#tag-events); ``shuffle`` has no TagType."""
    fields = _wecom_head(corp_id, create_time, "change_external_tag")
    fields += [("Id", tag_id), ("TagType", tag_type), ("ChangeType", change_type)]
    return render(fields)


def kf_event(corp_id: str, create_time: int, token: str, open_kfid: str) -> str:
    """``kf_msg_or_event`` (docs/platform.md#wecom-kf): a thin notifier carrying the sync ``Token`` and ``OpenKfId``."""
    fields: list[Field] = [
        ("ToUserName", corp_id),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", "kf_msg_or_event"),
        ("Token", token),
        ("OpenKfId", open_kfid),
    ]
    return render(fields)


def mp_event(
    original_id: str,
    openid: str,
    create_time: int,
    event: str,
    *,
    event_key: str | None = None,
    ticket: str | None = None,
) -> str:
    """OA event (docs/platform.md#follow-and-scan-events, #menu-events): subscribe (``qrscene_`` key when via a QR),
    SCAN, unsubscribe, CLICK…"""
    fields: list[Field] = [
        ("ToUserName", original_id),
        ("FromUserName", openid),
        ("CreateTime", create_time),
        ("MsgType", "event"),
        ("Event", event),
        ("EventKey", event_key),
        ("Ticket", ticket),
    ]
    return render(fields)


def mp_text(original_id: str, openid: str, create_time: int, content: str, msg_id: int) -> str:
    """OA text message (docs/platform.md#passive-replies): carries ``MsgId`` (the dedup key,
    docs/platform.md#timeouts-retries-and-dedup)."""
    fields: list[Field] = [
        ("ToUserName", original_id),
        ("FromUserName", openid),
        ("CreateTime", create_time),
        ("MsgType", "text"),
        ("Content", content),
        ("MsgId", msg_id),
    ]
    return render(fields)
