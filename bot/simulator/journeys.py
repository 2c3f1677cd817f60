"""Scripted user and staff actions: change the platform state, then push the matching callback.

Each action does what the real platform does on that user action (WeCom: docs/platform.md#customer-events, #wecom-kf;
Official Account: #follow-and-scan-events, #customer-service-messages, #menu-events) and returns the
:class:`~bot.simulator.pusher.Delivery`::

    sim = Simulator(state, wecom=wecom_pusher, mp=mp_pusher)
    added = await sim.add_friend("zhangsan", state="ch_douyin")   # add_external_contact + WelcomeCode
    await sim.join_group(chat_id, [added.external_userid], join_state="grp_poster")
    await sim.follow(scene="ch_poster_01")                         # subscribe, EventKey qrscene_…
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.simulator import wecom_transfers, xml_events
from bot.simulator.models import GroupMember, KfMessage, MsgTemplate, OaFollower, ServiceWindow, WelcomeCode
from bot.simulator.pusher import CallbackPusher, Delivery
from bot.simulator.state import SimState
from bot.simulator.wecom_messages import confirm_msg_template

# docs/platform.md#customer-service-messages, #wecom-kf
MESSAGE_WINDOW = (int(timedelta(hours=48).total_seconds()), 5)  # user wrote
EVENT_WINDOW = (60, 3)  # follow / scan / menu click (docs/platform.md#customer-service-messages)


@dataclass(frozen=True)
class AddedFriend:
    external_userid: str
    welcome_code: str | None
    delivery: Delivery


@dataclass(frozen=True)
class CreatedGroup:
    chat_id: str
    delivery: Delivery


@dataclass(frozen=True)
class NewFollower:
    openid: str
    delivery: Delivery


@dataclass(frozen=True)
class Withheld:
    """A callback the platform produced but did not deliver (yet): see :meth:`Simulator.withheld`."""

    platform: str  # wecom | mp
    plaintext: str


class Simulator:
    """The platform acting on behalf of customers and staff. Pushers are needed per platform used."""

    def __init__(self, state: SimState, *, wecom: CallbackPusher | None = None, mp: CallbackPusher | None = None):
        self.state = state
        self._wecom = wecom
        self._mp = mp
        self._held: list[Withheld] | None = None

    @contextlib.contextmanager
    def withheld(self) -> Iterator[list[Withheld]]:
        """Callbacks produced inside the block are kept, not pushed: never deliver one to model a lost
        callback, or :meth:`deliver` them later in any order (WeCom: "may be lost or out of order",
        docs/platform.md#customer-group-events)."""
        held: list[Withheld] = []
        self._held = held
        try:
            yield held
        finally:
            self._held = None

    async def deliver(self, item: Withheld, *, duplicates: int = 0) -> Delivery:
        """Push a withheld callback now."""
        push = self._push_wecom if item.platform == "wecom" else self._push_mp
        return await push(item.plaintext, duplicates)

    async def _push_wecom(self, plaintext: str, duplicates: int) -> Delivery:
        if self._held is not None:
            self._held.append(Withheld("wecom", plaintext))
            return Delivery(plaintext)
        if self._wecom is None:
            raise RuntimeError("no WeCom callback pusher configured")
        return await self._wecom.push(plaintext, duplicates=duplicates)

    async def _push_mp(self, plaintext: str, duplicates: int) -> Delivery:
        if self._held is not None:
            self._held.append(Withheld("mp", plaintext))
            return Delivery(plaintext)
        if self._mp is None:
            raise RuntimeError("no Official Account callback pusher configured")
        return await self._mp.push(plaintext, duplicates=duplicates)

    # --- WeCom customers (docs/platform.md#customer-events, #welcome-messages) ------------------

    async def add_friend(
        self,
        userid: str,
        external_userid: str | None = None,
        state: str | None = None,
        *,
        half: bool = False,
        name: str = "",
        unionid: str | None = None,
        welcome_code: bool = True,
        duplicates: int = 0,
    ) -> AddedFriend:
        """A customer adds staff ``userid`` (via a 联系我 code whose ``state`` is given): pushes
        ``add_external_contact`` (or ``add_half_external_contact``) with a fresh 20-s WelcomeCode.
        ``welcome_code=False`` models a member with a console welcome message (no code,
        docs/platform.md#customer-events)."""
        s = self.state
        contact = s.add_contact(userid, external_userid, state=state, name=name, unionid=unionid)
        code = None
        if welcome_code:
            code = s.new_id("", 43)
            s.welcome_codes[code] = WelcomeCode(code, userid, contact.external_userid, s.now())
        change = "add_half_external_contact" if half else "add_external_contact"
        xml = xml_events.contact_event(
            s.accounts.corp_id, s.ts(), change, userid, contact.external_userid, state=state, welcome_code=code
        )
        return AddedFriend(contact.external_userid, code, await self._push_wecom(xml, duplicates))

    async def _end_relation(self, userid: str, external_userid: str, change: str, source: str | None) -> Delivery:
        follow = self.state.contacts[external_userid].follow[userid]
        follow.active = False
        s = self.state
        xml = xml_events.contact_event(s.accounts.corp_id, s.ts(), change, userid, external_userid, source=source)
        return await self._push_wecom(xml, 0)

    async def delete_friend_by_customer(self, userid: str, external_userid: str) -> Delivery:
        """The customer deletes the member → ``del_follow_user``."""
        return await self._end_relation(userid, external_userid, "del_follow_user", None)

    async def delete_customer_by_staff(self, userid: str, external_userid: str, source: str | None = None) -> Delivery:
        """The member deletes the customer → ``del_external_contact`` (``Source`` e.g. DELETE_BY_TRANSFER)."""
        return await self._end_relation(userid, external_userid, "del_external_contact", source)

    async def refuse_transfer(self, external_userid: str) -> Delivery:
        """The customer refuses a waiting handover (客户拒绝) → ``transfer_fail`` / ``customer_refused``
        (docs/platform.md#staff-transfers)."""
        handover = wecom_transfers.refuse(self.state, external_userid)
        return await self._push_wecom(wecom_transfers.fail_event(self.state, handover, "customer_refused"), 0)

    async def push_outgoing(self) -> list[Delivery]:
        """Deliver the callbacks the platform produced on its own (a handover failing at its takeover time)."""
        pending, self.state.outgoing = self.state.outgoing, []
        return [await self._push_wecom(xml, 0) for xml in pending]

    def confirm_group_msg(self, msgid: str, userid: str | None = None) -> MsgTemplate:
        """The member confirms a group-send task in the client (docs/platform.md#group-send-tasks); no callback."""
        return confirm_msg_template(self.state, msgid, userid)

    # --- WeCom customer groups (docs/platform.md#customer-group-events, #group-detail) --------

    async def create_group(
        self, owner: str, name: str = "", members: Sequence[str] = (), chat_id: str | None = None
    ) -> CreatedGroup:
        s = self.state
        group = s.add_group(owner, name, chat_id)
        for member_id in members:
            group.members[member_id] = self._member(member_id, join_scene=1, state=None, invitor=owner)
        if members:
            s.bump_member_version(group)
        xml = xml_events.chat_event(s.accounts.corp_id, s.ts(), group.chat_id, "create")
        return CreatedGroup(group.chat_id, await self._push_wecom(xml, 0))

    def _member(self, member_id: str, *, join_scene: int, state: str | None, invitor: str | None) -> GroupMember:
        contact = self.state.contacts.get(member_id)
        is_staff = member_id in self.state.staff
        return GroupMember(
            userid=member_id,
            type=1 if is_staff else 2,
            join_time=self.state.ts(),
            join_scene=join_scene,
            invitor=invitor,
            state=state,
            unionid=contact.unionid if contact else None,
            name=contact.name if contact else "",
        )

    async def join_group(
        self,
        chat_id: str,
        member_ids: Sequence[str],
        join_state: str | None = None,
        *,
        join_scene: int = 3,
        invitor: str | None = None,
        duplicates: int = 0,
    ) -> Delivery:
        """Members join (``join_scene`` as in groupchat/get: 1 invited, 2 link, 3 QR): the member list
        and version change, then ``update``/``add_member`` with JoinScene 3 (QR) or 0 (invited)."""
        s = self.state
        group = s.groups[chat_id]
        for member_id in member_ids:
            group.members[member_id] = self._member(member_id, join_scene=join_scene, state=join_state, invitor=invitor)
        last, cur = s.bump_member_version(group)
        xml = xml_events.chat_event(
            s.accounts.corp_id,
            s.ts(),
            chat_id,
            "update",
            update_detail="add_member",
            join_scene=3 if join_scene == 3 else 0,
            members=member_ids,
            last_mem_ver=last,
            cur_mem_ver=cur,
        )
        return await self._push_wecom(xml, duplicates)

    async def leave_group(self, chat_id: str, member_ids: Sequence[str], *, quit_scene: int = 0) -> Delivery:
        """Members leave (``quit_scene`` 0 themselves, 1 removed) → ``update``/``del_member``."""
        s = self.state
        group = s.groups[chat_id]
        for member_id in member_ids:
            group.members.pop(member_id, None)
        last, cur = s.bump_member_version(group)
        xml = xml_events.chat_event(
            s.accounts.corp_id,
            s.ts(),
            chat_id,
            "update",
            update_detail="del_member",
            quit_scene=quit_scene,
            members=member_ids,
            last_mem_ver=last,
            cur_mem_ver=cur,
        )
        return await self._push_wecom(xml, 0)

    async def update_group(
        self, chat_id: str, *, name: str | None = None, owner: str | None = None, notice: str | None = None
    ) -> list[Delivery]:
        """Rename / transfer / edit the notice → one ``update`` per change (change_name, change_owner,
        change_notice); the member list and its version stay as they are."""
        s = self.state
        group = s.groups[chat_id]
        out: list[Delivery] = []
        for detail, attr, value in (("change_name", "name", name), ("change_owner", "owner", owner),
                                    ("change_notice", "notice", notice)):  # fmt: skip
            if value is not None:
                setattr(group, attr, value)
                xml = xml_events.chat_event(s.accounts.corp_id, s.ts(), chat_id, "update", update_detail=detail)
                out.append(await self._push_wecom(xml, 0))
        return out

    async def dismiss_group(self, chat_id: str) -> Delivery:
        s = self.state
        s.groups[chat_id].dismissed = True
        return await self._push_wecom(xml_events.chat_event(s.accounts.corp_id, s.ts(), chat_id, "dismiss"), 0)

    # --- WeCom 微信客服 (docs/platform.md#wecom-kf) ----------------------------------------------

    async def kf_customer_writes(self, open_kfid: str, external_userid: str, content: str) -> Delivery:
        """A WeChat user writes to a kf account: the message waits for ``kf/sync_msg``, the 48 h /
        5-message window restarts, and ``kf_msg_or_event`` carries a 10-minute sync token."""
        s = self.state
        s.kf_messages.append(
            KfMessage(s.new_id("", 32), open_kfid, external_userid, s.ts(), 3, "text", {"content": content})
        )
        s.kf_windows[(open_kfid, external_userid)] = ServiceWindow(s.now(), *MESSAGE_WINDOW)
        token = s.new_id("ENC", 44)
        s.kf_tokens[token] = s.now()
        return await self._push_wecom(xml_events.kf_event(s.accounts.corp_id, s.ts(), token, open_kfid), 0)

    # --- Official Account (docs/platform.md#follow-and-scan-events, #customer-service-messages, #menu-events) ---

    def _follower(self, openid: str) -> OaFollower:
        follower = self.state.followers.get(openid)
        if follower is None:
            raise LookupError(f"unknown openid {openid}")
        return follower

    def _open_event_window(self, follower: OaFollower) -> None:
        follower.event_window = ServiceWindow(self.state.now(), *EVENT_WINDOW)

    def _ticket_for(self, scene: str) -> str:
        s = self.state
        for qr in s.qrcodes.values():
            if qr.scene == scene and (qr.expire_at is None or s.now() < qr.expire_at):
                return qr.ticket
        return "gQ" + s.new_id("", 94)  # a code made outside this simulator

    async def _mp_event(self, openid: str, event: str, key: str | None, ticket: str | None = None) -> Delivery:
        s = self.state
        xml = xml_events.mp_event(s.accounts.mp_original_id, openid, s.ts(), event, event_key=key, ticket=ticket)
        return await self._push_mp(xml, 0)

    async def follow(
        self, openid: str | None = None, scene: str | None = None, *, unionid: str | None = None
    ) -> NewFollower:
        """``subscribe``; via a parametric QR code the EventKey is ``qrscene_<scene>`` with a Ticket."""
        s = self.state
        follower = s.followers.get(openid or "") or s.add_follower(openid, unionid=unionid)
        follower.subscribed, follower.subscribe_time = True, s.ts()
        follower.subscribe_scene = "ADD_SCENE_QR_CODE" if scene is not None else "ADD_SCENE_SEARCH"
        follower.qr_scene_str = scene or ""
        follower.qr_scene = int(scene) if scene is not None and scene.isdigit() else 0
        self._open_event_window(follower)
        if scene is None:
            return NewFollower(follower.openid, await self._mp_event(follower.openid, "subscribe", ""))
        delivery = await self._mp_event(follower.openid, "subscribe", f"qrscene_{scene}", self._ticket_for(scene))
        return NewFollower(follower.openid, delivery)

    async def scan(self, openid: str, scene: str) -> Delivery:
        """A follower scans a parametric QR code → ``SCAN`` with the bare scene as EventKey."""
        follower = self._follower(openid)
        if not follower.subscribed:
            return (await self.follow(openid, scene)).delivery
        self._open_event_window(follower)
        return await self._mp_event(openid, "SCAN", scene, self._ticket_for(scene))

    async def unfollow(self, openid: str) -> Delivery:
        follower = self._follower(openid)
        follower.subscribed, follower.event_window, follower.message_window = False, None, None
        return await self._mp_event(openid, "unsubscribe", "")

    async def click_menu(self, openid: str, key: str) -> Delivery:
        """A ``click`` menu button → ``CLICK`` with the button key; opens the 3-in-1-minute window."""
        self._open_event_window(self._follower(openid))
        return await self._mp_event(openid, "CLICK", key)

    async def send_text(self, openid: str, content: str, *, duplicates: int = 0) -> Delivery:
        """The user writes text (with a 64-bit ``MsgId``); opens the 5-in-48-h window
        (docs/platform.md#customer-service-messages)."""
        s = self.state
        follower = self._follower(openid)
        follower.message_window = ServiceWindow(s.now(), *MESSAGE_WINDOW)
        msg_id = s.rng.randrange(10**18, 2**63)
        xml = xml_events.mp_text(s.accounts.mp_original_id, openid, s.ts(), content, msg_id)
        return await self._push_mp(xml, duplicates)
