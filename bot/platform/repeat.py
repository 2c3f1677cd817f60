"""Which platform calls may be made again when we cannot know whether the first one acted.

A call's answer can be lost after the platform acted (a timeout, a reset connection, a process killed
mid-call). The outbox then either repeats the call — only where a repeat cannot reach the customer a
second time — or resolves the doubt another way. Every API the outbox performs is listed here with the
reason; an API missing from both tables is treated as not repeatable (the safe default), and
``tests/kernel/test_repeat_classification.py`` fails when a handler queues an API not listed.
"""

from __future__ import annotations

# Safe to repeat, and why.
REPEATABLE: dict[str, str] = {
    "externalcontact/send_welcome_msg": (
        "the welcome_code works once: a repeat after a lost answer gets 41051, which the outbox reads as "
        "'delivered by our earlier attempt' (WeCom 'Send new-customer welcome message')"
    ),
    "externalcontact/mark_tag": "adds/removes tags on a relationship: the resulting set is the same after a repeat",
    "tags/members/batchtagging": "puts followers under a tag: a set, a repeat changes nothing",
    "tags/members/batchuntagging": "takes followers out of a tag: a set, a repeat changes nothing",
    "externalcontact/get": "read only",
    "externalcontact/get_groupmsg_task": "read only",
    "externalcontact/get_groupmsg_send_result": "read only",
    "externalcontact/get_groupmsg_list_v2": "read only",
    "externalcontact/groupchat/get": "read only",
    "user/info": "read only",
    "kf/sync_msg": "read with a cursor; the new cursor is stored only together with the messages read",
    "qrcode/create": (
        "a permanent QR code (QR_LIMIT_STR_SCENE) for a scene_str: a repeat makes at most another code for the "
        "same scene, which attributes the same and reaches no customer"
    ),
    "externalcontact/add_contact_way": (
        "a 联系我 code for a state: a repeat makes at most a second code with the same state, which "
        "attributes the same and reaches no customer (it counts against the corp's contact-way limit)"
    ),
    "externalcontact/update_contact_way": "sets a 联系我 code's fields: the same result after a repeat",
    "externalcontact/get_follow_user_list": "read only",
    "externalcontact/get_unassigned_list": "read only",
    "externalcontact/groupchat/list": "read only",
    "user/get": "read only",
    "externalcontact/resigned/transfer_result": "read only",
    "externalcontact/transfer_result": "read only",
}

# Not safe to repeat, and how a doubtful outcome is resolved.
NOT_REPEATABLE: dict[str, str] = {
    "externalcontact/add_msg_template": (
        "each call creates another group-send task: reconciled with get_groupmsg_list_v2 before any re-send"
    ),
    "message/custom/send": (
        "each call delivers another Official Account customer-service message and there is no idempotency "
        "field: uncertain, not re-sent"
    ),
    "message/send": "each call delivers another app message to the staff member: uncertain, not re-sent",
    "appchat/send": "each call posts again into the app group chat: uncertain, not re-sent",
    "kf/send_msg": (
        "each call delivers another 微信客服 message and spends one of the 5 allowed per 48 h: uncertain, not re-sent"
    ),
    "externalcontact/remind_groupmsg_send": (
        "each call notifies the staff member again (at most 3 reminders a day): uncertain, not re-sent"
    ),
    "externalcontact/resigned/transfer_customer": (
        "starts a handover; a repeat answers 40100 (already being handed over) for a customer the lost call "
        "started: uncertain, not re-sent — the transfer_result poll finds out (handlers/staff/transfers.py)"
    ),
    "externalcontact/transfer_customer": (
        "starts an 在职 handover (at most 2 per customer in 90 days): uncertain, not re-sent — the "
        "transfer_result poll finds out"
    ),
    "externalcontact/groupchat/transfer": "changes a group's owner: uncertain, not re-sent (the group list shows it)",
    "externalcontact/groupchat/onjob_transfer": (
        "changes a group's owner (at most 2 per group in 90 days): uncertain, not re-sent"
    ),
    "webhook/send": "a group robot posts every time it is called, with no way to look it up: uncertain, not re-sent",
}


def repeatable(api: str) -> bool:
    """True only for APIs listed as safe to repeat."""
    return api in REPEATABLE
