"""The simulator's whole world: accounts, data, clock, seeded ids, tokens and the call recording.

One :class:`SimState` is shared by the API server (:func:`bot.simulator.app.make_sim_app`) and the
scripted journeys (:class:`bot.simulator.journeys.Simulator`). Time comes from the injected clock
(``FrozenClock`` in tests), ids from ``random.Random(seed)`` so runs are repeatable.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import string
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.clock import Clock, SystemClock
from bot.simulator.errors import ApiError, Platform
from bot.simulator.faults import Faults
from bot.simulator.models import (
    ChannelCode,
    CorpTag,
    CorpTagGroup,
    ExternalContact,
    FollowUser,
    GroupChat,
    GroupMember,
    KfMessage,
    Media,
    MsgTemplate,
    OaFollower,
    OaTag,
    QrCode,
    ServiceWindow,
    StaffUser,
    WelcomeCode,
    WelcomeTemplate,
)
from bot.simulator.token_store import TokenStore

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.simulator.models import Delivered, Handover

_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class SimAccounts:
    """Credentials of the simulated corp and Official Account (defaults are test values)."""

    corp_id: str = "wwsimcorp0000000001"
    corp_secret: str = "sim-corp-secret"
    agent_id: int = 1000002
    wecom_token: str = "simWeComToken"
    wecom_aes_key: str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
    app_id: str = "wxsimapp00000001"
    app_secret: str = "sim-app-secret"
    mp_original_id: str = "gh_sim000000001"
    mp_token: str = "simMpToken"
    mp_aes_key: str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

    @classmethod
    def from_settings(cls, settings: Settings, mp_original_id: str = "gh_sim000000001") -> SimAccounts:
        """Accept exactly the credentials the bot is configured with (demo, developer runs)."""
        w, m = settings.wecom, settings.official_account
        return cls(
            corp_id=w.corp_id,
            corp_secret=w.secret.get(),
            agent_id=w.agent_id,
            wecom_token=w.token.get(),
            wecom_aes_key=w.encoding_aes_key.get(),
            app_id=m.app_id,
            app_secret=m.app_secret.get(),
            mp_original_id=mp_original_id,
            mp_token=m.token.get(),
            mp_aes_key=m.encoding_aes_key.get(),
        )


@dataclass(frozen=True)
class RecordedCall:
    """One API call as the platform saw it; ``query`` never holds ``access_token``."""

    at: datetime
    platform: Platform
    method: str
    api: str  # the path after ``cgi-bin/``, e.g. ``externalcontact/send_welcome_msg``
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None
    status: int
    response: dict[str, Any]
    answer_lost: str | None = None  # "reset" / "timeout": served, but the caller never got the answer

    @property
    def errcode(self) -> int:
        code = self.response.get("errcode", 0)
        return code if isinstance(code, int) else -1


class SimState:
    """Mutable platform state. Not thread-safe; used from one event loop."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        seed: int = 20240601,
        accounts: SimAccounts | None = None,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.rng = random.Random(seed)
        self.accounts = accounts or SimAccounts()
        self.tz = zoneinfo.ZoneInfo(timezone)
        self.tokens = TokenStore(self.clock, self.rng)
        self.calls: list[RecordedCall] = []
        self.staff: dict[str, StaffUser] = {}
        self.contacts: dict[str, ExternalContact] = {}
        self.welcome_codes: dict[str, WelcomeCode] = {}
        self.tag_groups: dict[str, CorpTagGroup] = {}
        self.tags: dict[str, CorpTag] = {}
        self.groups: dict[str, GroupChat] = {}
        self.contact_ways: dict[str, ChannelCode] = {}
        self.join_ways: dict[str, ChannelCode] = {}
        self.media: dict[str, Media] = {}  # media_id -> uploaded temporary media
        self.msg_templates: dict[str, MsgTemplate] = {}
        self.welcome_templates: dict[str, WelcomeTemplate] = {}  # template_id -> group welcome template
        self.mass_received: dict[tuple[str, str], int] = {}
        self.kf_messages: list[KfMessage] = []
        self.kf_tokens: dict[str, datetime] = {}
        self.kf_windows: dict[tuple[str, str], ServiceWindow] = {}
        self.followers: dict[str, OaFollower] = {}
        # Web authorisation (bot.simulator.oauth): the WeChat user at the browser, and issued codes.
        self.web_user: str | None = None
        self.oauth_codes: dict[str, tuple[str, datetime, bool]] = {}  # code -> (openid, issued, used)
        self.oa_tags: dict[int, OaTag] = {}
        self.qrcodes: dict[str, QrCode] = {}
        self.mp_templates: set[str] = {"TPL_sim_notice"}
        self.delivered: list[Delivered] = []
        self.template_dedup: dict[tuple[str, str], tuple[str, datetime]] = {}
        self.injected: dict[str, list[tuple[int, str]]] = {}
        self.faults = Faults(_inject=self.inject_error)  # test-only: nothing happens unless armed
        self.auto_confirm_group_msgs = False
        self.robots: dict[str, str] = {}  # group robot webhook key → chat_id (docs/platform.md#group-robots)
        self.robot_sends: dict[str, list[datetime]] = {}  # key → recent send times (20/min limit)
        # cursor → (api, the traversal's snapshot, position) for the list APIs (bot.simulator.wecom_lists)
        self.list_cursors: dict[str, tuple[str, list[Any], int]] = {}
        self.handovers: list[Handover] = []  # customer handovers (bot.simulator.wecom_transfers)
        self.outgoing: list[str] = []  # WeCom callbacks the platform produced on its own, until pushed
        self._seq = 0

    # --- time and ids ------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def ts(self) -> int:
        return int(self.clock.now().timestamp())

    def new_id(self, prefix: str, length: int = 30) -> str:
        return prefix + "".join(self.rng.choice(_ALNUM) for _ in range(length))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def bump_member_version(self, group: GroupChat) -> tuple[str, str]:
        """Advance ``member_version`` (32 hex chars like the platform's); returns (last, current)."""
        last = group.member_version
        group.version_seq += 1
        group.member_version = hashlib.md5(f"{group.chat_id}:{group.version_seq}".encode()).hexdigest()
        return last, group.member_version

    def month_cap(self) -> tuple[str, int]:
        """(month key, cap): each customer/group receives ≤ "days in the month" mass messages
        (docs/platform.md#group-send-tasks)."""
        local = self.now().astimezone(self.tz)
        return f"{local:%Y-%m}", calendar.monthrange(local.year, local.month)[1]

    # --- recording and fault injection -------------------------------------------------------

    def calls_to(self, api: str, platform: Platform | None = None) -> list[RecordedCall]:
        """Recorded calls to ``api`` (``"externalcontact/send_welcome_msg"``; a leading
        ``cgi-bin/`` or ``/`` is ignored), oldest first, optionally for one platform."""
        name = api.lstrip("/").removeprefix("cgi-bin/")
        return [c for c in self.calls if c.api == name and (platform is None or c.platform == platform)]

    def last_call(self, api: str, platform: Platform | None = None) -> RecordedCall:
        calls = self.calls_to(api, platform)
        if not calls:
            raise LookupError(f"no call to {api}")
        return calls[-1]

    def inject_error(self, api: str, errcode: int, errmsg: str = "injected", times: int = 1) -> None:
        """Make the next ``times`` calls to ``api`` answer ``errcode`` (e.g. -1 system busy, 41096)."""
        self.injected.setdefault(api, []).extend([(errcode, errmsg)] * times)

    def take_injected(self, api: str) -> ApiError | None:
        queue = self.injected.get(api)
        if not queue:
            return None
        errcode, errmsg = queue.pop(0)
        return ApiError(errcode, errmsg)

    # --- seeding helpers (no callbacks; journeys push events) --------------------------------

    def add_staff(self, userid: str, name: str | None = None) -> StaffUser:
        user = StaffUser(userid=userid, name=name or userid)
        self.staff[userid] = user
        return user

    def add_contact(
        self,
        userid: str,
        external_userid: str | None = None,
        *,
        state: str | None = None,
        name: str = "",
        unionid: str | None = None,
    ) -> ExternalContact:
        """Make ``external_userid`` a customer of staff ``userid`` (creates both when missing)."""
        if userid not in self.staff:
            self.add_staff(userid)
        ext = external_userid or self.new_id("wm")
        contact = self.contacts.get(ext)
        if contact is None:
            contact = ExternalContact(external_userid=ext, name=name or f"customer-{ext[-4:]}", unionid=unionid)
            self.contacts[ext] = contact
        contact.follow[userid] = FollowUser(userid=userid, createtime=self.ts(), state=state, oper_userid=ext)
        return contact

    def add_corp_tag(self, group_name: str, tag_name: str, *, by_api: bool = False) -> CorpTag:
        """Create a tag (by default as if made in the admin console, i.e. not editable by the app)."""
        group = next((g for g in self.tag_groups.values() if g.group_name == group_name), None)
        if group is None:
            group = CorpTagGroup(self.new_id("et", 20), group_name, self.ts(), created_by_api=by_api)
            self.tag_groups[group.group_id] = group
        tag = CorpTag(self.new_id("et", 20), tag_name, group.group_id, self.ts(), created_by_api=by_api)
        self.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
        return tag

    def add_group(self, owner: str, name: str = "", chat_id: str | None = None) -> GroupChat:
        if owner not in self.staff:
            self.add_staff(owner)
        group = GroupChat(chat_id=chat_id or self.new_id("wr"), name=name, owner=owner, create_time=self.ts())
        group.members[owner] = GroupMember(owner, 1, self.ts(), 1)
        self.bump_member_version(group)
        self.groups[group.chat_id] = group
        return group

    def add_robot(self, chat_id: str) -> str:
        """Add a webhook robot to a group; returns its key (the secret part of the webhook URL)."""
        key = "-".join(self.new_id("", n).lower() for n in (8, 4, 4, 4, 12))
        self.robots[key] = chat_id
        return key

    def add_follower(self, openid: str | None = None, *, unionid: str | None = None) -> OaFollower:
        follower = OaFollower(openid=openid or self.new_id("o", 27), unionid=unionid, subscribe_time=self.ts())
        self.followers[follower.openid] = follower
        return follower
