"""The platform's data as the simulator holds it; field names follow the official API spelling.

Everything here is plain data. Rules (time limits, quotas, errcodes) live in the API modules and in
:mod:`bot.simulator.state`, so a test can also build or inspect these rows directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class StaffUser:
    userid: str
    name: str
    department: list[int] = field(default_factory=lambda: [1])  # ``user/get`` → ``department``
    dimission_time: int | None = None  # set when the member left (离职): docs/platform.md#staff-transfers
    customer_limit: int | None = None  # the member's customer cap (None: not reached in the simulator)


@dataclass
class FollowUser:
    """One staff→customer relationship (``externalcontact/get`` → ``follow_user[]``, [W:96315])."""

    userid: str
    createtime: int
    state: str | None = None
    add_way: int = 1  # 1 = scanned the member's QR code (联系我)
    remark: str = ""
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    oper_userid: str = ""
    active: bool = True  # False once either side deleted the other (docs/platform.md#customer-events)


@dataclass
class ExternalContact:
    external_userid: str
    name: str
    unionid: str | None = None
    type: int = 1  # 1 = WeChat user, 2 = WeCom user
    gender: int = 0
    follow: dict[str, FollowUser] = field(default_factory=dict)
    # docs/platform.md#welcome-messages
    welcomes: list[dict[str, Any]] = field(default_factory=list)  # delivered welcome bodies


@dataclass
class WelcomeCode:
    """A ``WelcomeCode`` from ``add_external_contact``: valid 20 s, usable once (docs/platform.md#welcome-messages)."""

    code: str
    userid: str
    external_userid: str
    issued_at: datetime
    used: bool = False


@dataclass
class CorpTag:
    id: str
    name: str
    group_id: str
    create_time: int
    order: int = 0
    created_by_api: bool = True  # an app may edit/delete only the tags it created (docs/platform.md#corp-tags)


@dataclass
class CorpTagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    created_by_api: bool = True
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class GroupMember:
    """``groupchat/get`` → ``member_list[]``
    (docs/platform.md#group-detail). ``join_scene``: 1 direct, 2 link, 3 QR code."""

    userid: str
    type: int  # 1 corp member, 2 external contact
    join_time: int
    join_scene: int
    invitor: str | None = None
    state: str | None = None
    unionid: str | None = None
    name: str = ""
    group_nickname: str = ""


@dataclass
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    members: dict[str, GroupMember] = field(default_factory=dict)
    admins: list[str] = field(default_factory=list)
    member_version: str = ""
    version_seq: int = 0
    dismissed: bool = False


@dataclass
class ChannelCode:
    """A 联系我 (``add_contact_way``) or 加入群聊 (``add_join_way``) configuration, stored as sent."""

    config_id: str
    fields: dict[str, Any]
    qr_code: str | None


@dataclass
class SendResult:
    """One target of a group-send task; ``status`` as in ``get_groupmsg_send_result``
    (docs/platform.md#group-send-tasks)."""

    userid: str
    external_userid: str | None = None
    chat_id: str | None = None
    status: int = 0  # 0 not sent, 1 sent, 2 failed (not a friend), 3 failed (receive cap)
    send_time: int | None = None


@dataclass
class MsgTemplate:
    msgid: str
    chat_type: str
    create_time: int
    body: dict[str, Any]
    results: list[SendResult] = field(default_factory=list)
    reminders: list[datetime] = field(default_factory=list)


@dataclass
class KfMessage:
    msgid: str
    open_kfid: str
    external_userid: str
    send_time: int
    origin: int  # 3 customer, 4 system event, 5 servicer
    msgtype: str
    content: dict[str, Any]


@dataclass
class ServiceWindow:
    """A span in which the platform lets the account write first (kf:
    docs/platform.md#wecom-kf; OA: #customer-service-messages)."""

    opened_at: datetime
    seconds: int
    limit: int
    used: int = 0


@dataclass
class OaFollower:
    openid: str
    unionid: str | None = None
    subscribed: bool = True
    subscribe_time: int = 0
    subscribe_scene: str = "ADD_SCENE_SEARCH"
    qr_scene: int = 0
    qr_scene_str: str = ""
    remark: str = ""
    tag_ids: list[int] = field(default_factory=list)
    message_window: ServiceWindow | None = None  # user wrote: 5 msgs / 48 h
    event_window: ServiceWindow | None = None  # follow / scan / click: 3 msgs / 1 min


@dataclass
class OaTag:
    id: int
    name: str


@dataclass
class QrCode:
    ticket: str
    action_name: str
    scene_id: int | None
    scene_str: str | None
    expire_at: datetime | None

    @property
    def scene(self) -> str:
        return self.scene_str if self.scene_str is not None else str(self.scene_id)


@dataclass
class Delivered:
    """A message the platform delivered to someone (app message, OA custom/template message)."""

    api: str
    to: str
    at: datetime
    body: dict[str, Any]
    msgid: str = ""


@dataclass
class Media:
    """A temporary media file from ``media/upload`` ([W:90253]): its ``media_id`` is valid 3 days."""

    media_id: str
    type: str  # image | voice | video | file
    filename: str
    size: int
    created_at: datetime


@dataclass
class WelcomeTemplate:
    """A group welcome template
    (docs/platform.md#group-welcome-templates): ``content`` is ``text`` plus at most one attachment field, as sent."""

    template_id: str
    content: dict[str, Any]
    notify: int
    create_time: int
    created_by_api: bool = True  # an app may edit/delete only the templates it created


# transfer_result statuses (bot/simulator/wecom_transfers.py): 1 done, 2 waiting, 3 refused, 4 at the cap
WAITING, DONE, REFUSED, LIMIT = 2, 1, 3, 4


@dataclass
class Handover:
    """One customer's handover from ``handover`` to ``takeover`` (``kind`` resigned | onjob)."""

    kind: str
    handover: str
    takeover: str
    external_userid: str
    started: int
    takeover_time: int
    status: int = WAITING
    success_msg: str | None = None
