"""Scheduled group posts: fire → resolve groups → per-group budget → one send per owner (or robot).

Exactly once across replicas and crashes (docs/operations.md, "Scheduling"): each fire is a set of ``group_fires``
rows unique on (post, fire time, target). A marker row (target ``"post"``) says the fire started
(``firing``) and finished (``done``) or was ``missed``. Each target — ``owner:<userid>`` for a group-send
task or an app message, ``robot:<chat_id>`` for a webhook — is inserted with ``ON CONFLICT DO NOTHING``
and, only by the process whose insert won, its ledger rows and outbox call are written in the same
transaction. Two replicas firing together, a cron job and a catch-up racing, or a restart after a crash
mid fan-out all end in one call per target: the fire is simply run again and finished targets are skipped.

A fire later than ``budget.missed_after`` is recorded ``missed``, never sent. On start-up (and every
minute) :meth:`GroupSop.catch_up` fires what is due since the last recorded fire of each post.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import PRIORITY_BULK, Context
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.scheduler import due_fires
from bot.services import Services
from handlers.sop.content import sop_of
from handlers.sop.content.group_tags import GROUP_TAGS, GroupTags
from handlers.sop.content.model import Delivery, GroupPost
from handlers.sop.group_sop_delivery import (
    DELIVERED,
    MAX_CHAT_IDS,
    TASK_CREATED,
    owner_message_body,
    render_post,
    robot_body,
    task_body,
)
from handlers.sop.group_sop_results import FIRST_CHECK
from handlers.sop.group_sop_robots import ROBOT_API, ROBOT_PLATFORM, RobotCaller, robot_slots
from handlers.sop.group_sop_targets import KnownGroup, by_owner, group_budget, known_groups, select_groups
from handlers.sop.tables import ContactLedger, GroupFire

log = logging.getLogger(__name__)
router = Router("group_sop")

MARKER = "post"
LOOKBACK = timedelta(days=7)  # catch-up never looks further back than this
SEND_DEADLINE = timedelta(hours=6)  # a post not handed to the platform by then is expired, not sent late


@dataclass(frozen=True, slots=True)
class Batch:
    target: str  # "owner:<userid>[#n]" | "robot:<chat_id>"
    chat_ids: list[str]


def plan(post: GroupPost, groups: list[KnownGroup]) -> list[Batch]:
    """One batch per owner (≤ 2000 groups each, docs/platform.md#group-send-tasks) — or per group for robot webhooks."""
    if post.delivery is Delivery.GROUP_ROBOT:
        return [Batch(f"robot:{g.chat_id}", [g.chat_id]) for g in groups]
    out = []
    for owner, chats in by_owner(groups).items():
        for n, i in enumerate(range(0, len(chats), MAX_CHAT_IDS)):
            out.append(Batch(f"owner:{owner}" + (f"#{n + 1}" if n else ""), chats[i : i + MAX_CHAT_IDS]))
    return out


def owner_of(target: str) -> str:
    return target.split(":", 1)[1].split("#", 1)[0]


class GroupSop:
    """The group-post engine of one process; ``fire`` is what the scheduler calls."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self._lock = asyncio.Lock()  # one fan-out at a time in this process (SQLite has one writer anyway)

    def _post(self, post_id: str) -> GroupPost | None:
        return next((p for p in sop_of(self.s.content).group_posts if p.id == post_id), None)

    async def fire(self, post_id: str, fire_at: datetime) -> str:
        """Run one fire: ``done`` | ``missed`` | ``already`` (finished before) | ``unknown`` post."""
        post = self._post(post_id)
        if post is None:
            log.warning("group post %s is no longer in the content; fire at %s dropped", post_id, fire_at)
            return "unknown"
        async with self._lock:
            late = self.s.clock.now() - fire_at
            budget = sop_of(self.s.content).budget
            if late > budget.missed_after:
                await self._close(post, fire_at, "missed", f"{late} late; missed_after is {budget.missed_after}")
                return "missed"
            if not await self._open(post, fire_at):
                return "already"
            batches, names = await self._plan(post)
            for batch in batches:
                await self._fan_out(post, fire_at, batch, names)
            await self._close(post, fire_at, "done", f"{len(batches)} targets")
            return "done"

    async def catch_up(self) -> list[tuple[str, datetime]]:
        """Fire (or record as missed) every fire due since each post's last recorded fire."""
        now = self.s.clock.now()
        grace = sop_of(self.s.content).budget.missed_after
        assert self.s.sessions is not None
        async with self.s.sessions() as session:
            last: dict[str, datetime] = dict(
                (await session.execute(
                    select(GroupFire.post_id, func.max(GroupFire.fire_at))
                    .where(GroupFire.target == MARKER).group_by(GroupFire.post_id)
                )).all()
            )  # fmt: skip
            firing = (await session.execute(
                select(GroupFire.post_id, GroupFire.fire_at)
                .where(GroupFire.target == MARKER, GroupFire.state == "firing")
            )).all()  # fmt: skip
        due = {(post_id, at) for post_id, at in firing}
        for post in sop_of(self.s.content).group_posts:
            since = max(last.get(post.id) or now - grace, now - LOOKBACK)
            due.update(due_fires([post], since, now, self.s.settings.tz))
        ordered = sorted(due, key=lambda pair: (pair[1], pair[0]))
        for post_id, at in ordered:
            await self.fire(post_id, at)
        return ordered

    # --- one fire ----------------------------------------------------------------------------------

    async def _open(self, post: GroupPost, fire_at: datetime) -> bool:
        """Record that the fire started; False when it already finished (done or missed)."""
        assert self.s.sessions is not None
        async with self.s.sessions() as session, session.begin():
            await insert_ignore(session, GroupFire, self._row(post, fire_at, MARKER, [], "firing"), _KEY)
            state = await session.scalar(select(GroupFire.state).where(*_where(post.id, fire_at, MARKER)))
        return state == "firing"

    async def _close(self, post: GroupPost, fire_at: datetime, state: str, reason: str) -> None:
        assert self.s.sessions is not None
        async with self.s.sessions() as session, session.begin():
            await insert_ignore(session, GroupFire, self._row(post, fire_at, MARKER, [], state, reason), _KEY)
            await session.execute(
                update(GroupFire)
                .where(*_where(post.id, fire_at, MARKER), GroupFire.state == "firing")
                .values(state=state, reason=reason, updated_at=self.s.clock.now())
            )

    def _row(
        self, post: GroupPost, fire_at: datetime, target: str, chats: list[str], state: str, reason: str | None = None
    ) -> dict[str, object]:
        now = self.s.clock.now()
        return {
            "post_id": post.id, "fire_at": fire_at, "target": target, "delivery": post.delivery.value,
            "state": state, "chat_ids": {"chat_ids": chats}, "reason": reason, "reminders": 0,
            "created_at": now, "updated_at": now,
        }  # fmt: skip

    async def _plan(self, post: GroupPost) -> tuple[list[Batch], dict[str, str]]:
        assert self.s.sessions is not None
        async with self.s.sessions() as session:
            groups = await known_groups(session)
        tags = self.s.content.one(GROUP_TAGS) or GroupTags()
        chosen = select_groups(groups, post.targets, tags)
        return plan(post, chosen), {g.chat_id: g.name or g.chat_id for g in chosen}

    async def _fan_out(self, post: GroupPost, fire_at: datetime, batch: Batch, names: dict[str, str]) -> None:
        """Claim one target and queue its send, all in one transaction; a lost race does nothing."""
        s = self.s
        async with s.sessions() as session, session.begin():
            row = self._row(post, fire_at, batch.target, batch.chat_ids, "pending")
            if not await insert_ignore(session, GroupFire, row, _KEY):
                return
            fire = await session.scalar(select(GroupFire).where(*_where(post.id, fire_at, batch.target)))
            assert fire is not None
            ctx = Context(session, s.settings, s.clock, s.rng, None, s)
            verdict = await group_budget(
                session, batch.chat_ids, budget=sop_of(s.content).budget, delivery=post.delivery,
                category=post.category, at=ctx.now(), tz=s.settings.tz,
            )  # fmt: skip
            skipped = dict(verdict.skipped)
            queued = await self._queue(ctx, post, fire, verdict.allowed, names, skipped) if verdict.allowed else False
            sent = verdict.allowed if queued else []
            self._ledger(session, post, ctx.now(), sent, skipped)
            fire.state, fire.reason = ("queued", None) if queued else ("skipped", _summary(skipped))
            new_calls = await ctx.flush_outbox()
            fire.outbox_id = new_calls[0][0] if new_calls else None
        s.outbox.notify(new_calls)

    async def _queue(
        self, ctx: Context, post: GroupPost, fire: GroupFire, chats: list[str], names: dict[str, str],
        skipped: dict[str, str],
    ) -> bool:  # fmt: skip
        message = ctx.content.message(post.message)
        if message is None:
            skipped.update(dict.fromkeys(chats, f"message {post.message!r} is not in the content"))
            return False
        rendered = await render_post(ctx, message)
        key = f"global:gsop:{fire.id}"
        deadline = fire.fire_at + SEND_DEADLINE
        if post.delivery is Delivery.WECOM_TASK_GROUP:
            body = task_body(rendered, owner_of(fire.target), chats)
            ctx.call_platform("wecom", "externalcontact/add_msg_template", body, key=key, priority=PRIORITY_BULK,
                              deadline=deadline, then=TASK_CREATED)  # fmt: skip
        elif post.delivery is Delivery.APP_TO_OWNER:
            agent = ctx.settings.wecom.agent_id
            body = owner_message_body(rendered, owner_of(fire.target), agent, [names[c] for c in chats])
            ctx.call_platform("wecom", "message/send", body, key=key, priority=PRIORITY_BULK, deadline=deadline,
                              then=DELIVERED)  # fmt: skip
        else:
            return await self._queue_robot(ctx, rendered_body=robot_body(rendered), chats=chats, key=key,
                                           deadline=deadline, skipped=skipped)  # fmt: skip
        return True

    async def _queue_robot(
        self, ctx: Context, *, rendered_body: dict[str, object], chats: list[str], key: str, deadline: datetime,
        skipped: dict[str, str],
    ) -> bool:  # fmt: skip
        robot = self.s.clients.get(ROBOT_PLATFORM)
        if not isinstance(robot, RobotCaller) or not robot.keys.has(chats[0]):
            skipped.update(dict.fromkeys(chats, "no robot webhook key for this group"))
            return False
        slots = await robot_slots(ctx.session, robot.keys, chats, ctx.now())
        ctx.call_platform(ROBOT_PLATFORM, ROBOT_API, dict(rendered_body), key=key, priority=PRIORITY_BULK,
                          not_before=slots[chats[0]], deadline=max(deadline, slots[chats[0]] + SEND_DEADLINE),
                          params={"chat_id": chats[0]}, then=DELIVERED)  # fmt: skip
        return True

    def _ledger(
        self, session: AsyncSession, post: GroupPost, now: datetime, sent: list[str], skipped: dict[str, str]
    ) -> None:
        common = {"customer_id": None, "at": now, "category": post.category.value,
                  "delivery": post.delivery.value, "source": f"post:{post.id}"}  # fmt: skip
        for chat_id in sent:
            session.add(ContactLedger(chat_id=chat_id, outcome="sent", reason=None, **common))
        for chat_id, reason in skipped.items():
            session.add(ContactLedger(chat_id=chat_id, outcome="skipped", reason=reason, **common))


_KEY = ["post_id", "fire_at", "target"]


def _where(post_id: str, fire_at: datetime, target: str) -> tuple[ColumnElement[bool], ...]:
    return (GroupFire.post_id == post_id, GroupFire.fire_at == fire_at, GroupFire.target == target)


def _summary(skipped: dict[str, str]) -> str:
    reasons = sorted(set(skipped.values()))
    return "; ".join(reasons)[:2000] if reasons else "no groups"


async def _fire_of(ctx: Context, call_id: int | None) -> GroupFire | None:
    if call_id is None:
        return None
    return await ctx.session.scalar(select(GroupFire).where(GroupFire.outbox_id == call_id))


@router.on_result(TASK_CREATED)
async def record_task_created(result: PlatformResult, ctx: Context) -> None:
    """``add_msg_template`` answered: keep the ``msgid`` for results and reminders
    (docs/platform.md#group-send-tasks)."""
    fire = await _fire_of(ctx, result.call_id)
    msgid = result.response.get("msgid")
    if fire is None or not isinstance(msgid, str):
        return
    fire.msgid, fire.state, fire.updated_at = msgid, "sent", ctx.now()
    fire.next_check_at = ctx.now() + FIRST_CHECK
    fails = result.response.get("fail_list") or []
    fire.results = {"chats": {}, "reminded": [], "fail_list": list(fails) if isinstance(fails, list) else []}


@router.on_result(DELIVERED)
async def record_delivered(result: PlatformResult, ctx: Context) -> None:
    """An app message to the owner or a robot post went out: nothing more to follow up."""
    fire = await _fire_of(ctx, result.call_id)
    if fire is not None:
        fire.state, fire.updated_at = "sent", ctx.now()
