"""Referral (老带新): personal invite codes, crediting arrivals, holding, releasing or revoking rewards.

The goal is the new customer's first order, not the add (retail referral practice), so the reward is held:

* :func:`invite_code_for` gives a customer ``<code_prefix><8 chars>``: their own 联系我 ``state``
  (``externalcontact/add_contact_way``, docs/platform.md#contact-me-codes) or Official Account QR ``scene_str``
  (``qrcode/create`` QR_LIMIT_STR_SCENE,
  docs/platform.md#parametric-qr-codes; ≤ 100,000 permanent codes per account) via the outbox.
* An add/follow whose State/scene is such a code credits the inviter (a ``held`` Referral) — only if
  the invitee is genuinely new: no customer row before this arrival (this router runs before friends/
  follow create one), not the inviter, never referred before (unique invitee). Others are recorded
  ``rejected`` with the reason, so operators see attempted fake growth.
* FriendLost / Unfollowed during the hold → ``revoked``.
* :func:`release_due` (run periodically by the scheduler) decides held rows past ``release_after``:
  still a friend/follower, (optionally) a first order (waits up to ``FIRST_ORDER_WAIT`` after arrival),
  the inviter's monthly cap (local calendar month) → ``released`` + rewards, else ``rejected``.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from bot.content import Platform
from bot.context import Context
from bot.db.models import Customer
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.events import Followed, FriendAdded, FriendLost, Unfollowed
from handlers.customers.identity import ensure_customer, find_customer
from handlers.growth.content import channels_of
from handlers.growth.tables import WeComRelation
from handlers.interactions.content import interactions_of
from handlers.interactions.content.model import Referral as ReferralRules
from handlers.interactions.events import ReferralRewarded
from handlers.interactions.rewards import grant_reward
from handlers.interactions.tables import Referral, ReferralCode

log = logging.getLogger(__name__)
router = Router("referral")

CODE_CHARS = string.ascii_lowercase + string.digits
CODE_LENGTH = 8
FIRST_ORDER_WAIT = timedelta(days=30)  # after arrival: no first order by then → rejected
RELEASE_BATCH = 500


class NoInviteCode(Exception):
    """Referral is off, or there is no staff member to own a 联系我 code."""


# --- personal codes ------------------------------------------------------------------------------


async def invite_code_for(ctx: Context, customer_id: int) -> ReferralCode:
    """The customer's invite code, created on first request (the platform code is made via the outbox;
    ``remote_id``/``qr_url`` are filled in when it answers)."""
    rules = interactions_of(ctx.content).referral
    if rules is None or not rules.enabled:
        raise NoInviteCode("referral is not enabled")
    found = await ctx.session.get(ReferralCode, customer_id)
    if found is not None:
        return found
    code = rules.code_prefix + "".join(ctx.rng.choice(CODE_CHARS) for _ in range(CODE_LENGTH))
    platform = rules.code_platform.value
    if rules.code_platform is Platform.WECOM_FRIEND:
        staff = await _code_owner(ctx, customer_id)
        body: dict[str, Any] = {"type": 1, "scene": 2, "state": code, "user": [staff], "skip_verify": True}
        body["remark"] = f"老带新 {customer_id}"[:30]
        api, target = "externalcontact/add_contact_way", "wecom"
    else:
        body = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": code}}}
        api, target = "qrcode/create", "mp"
    row = {"customer_id": customer_id, "code": code, "platform": platform, "created_at": ctx.now()}
    if await insert_ignore(ctx.session, ReferralCode, row, ["customer_id"]):
        ctx.call_platform(target, api, body, key=f"global:referral_code:{customer_id}", then="referral_code")
    made = await ctx.session.get(ReferralCode, customer_id, populate_existing=True)
    assert made is not None
    return made


async def _code_owner(ctx: Context, customer_id: int) -> str:
    """The staff member the inviter is friends with (their own 联系我), else the default channel's."""
    staff = await ctx.session.scalar(
        select(WeComRelation.staff_userid)
        .where(WeComRelation.customer_id == customer_id, WeComRelation.active.is_(True))
        .order_by(WeComRelation.added_at)
        .limit(1)
    )
    if staff:
        return str(staff)
    default = channels_of(ctx.content).default_channel(Platform.WECOM_FRIEND)
    if default is not None and default.contact_way is not None and default.contact_way.staff:
        return default.contact_way.staff[0]
    raise NoInviteCode("no staff member to own the invite code")


@router.on_result("referral_code")
async def remember_platform_code(result: PlatformResult, ctx: Context) -> None:
    """add_contact_way → ``config_id`` + ``qr_code``; qrcode/create → ``ticket`` + ``url``."""
    req, resp = result.request, result.response
    code = req.get("state") or req.get("action_info", {}).get("scene", {}).get("scene_str")
    remote = resp.get("config_id") or resp.get("ticket")
    qr = resp.get("qr_code") or resp.get("url")
    await ctx.session.execute(
        update(ReferralCode)
        .where(ReferralCode.code == str(code))
        .values(remote_id=str(remote) if remote else None, qr_url=str(qr) if qr else None)
    )


# --- arrivals and losses -------------------------------------------------------------------------


def _rules(ctx: Context) -> ReferralRules | None:
    rules = interactions_of(ctx.content).referral
    return rules if rules is not None and rules.enabled else None


@router.on(FriendAdded, Followed)
async def credit_inviter(event: FriendAdded | Followed, ctx: Context) -> None:
    rules = _rules(ctx)
    key = event.state if isinstance(event, FriendAdded) else event.scene
    if rules is None or not key or not key.startswith(rules.code_prefix):
        return
    code = await ctx.session.scalar(select(ReferralCode).where(ReferralCode.code == key))
    if code is None:
        log.info("arrival with an unknown invite code", extra={"code": key})
        return
    column, value = ("external_userid", event.external_userid) if isinstance(event, FriendAdded) else (
        "openid", event.openid)  # fmt: skip
    existed = await find_customer(ctx, column, value)
    invitee = existed or await ensure_customer(ctx, column, value)
    arrived = datetime.fromtimestamp(event.create_time, UTC)
    state, reason = "held", None
    if invitee.id == code.customer_id:
        state, reason = "rejected", "self-invite"
    elif existed is not None:
        state, reason = "rejected", "not new: the customer existed before this arrival"
    values = {
        "invitee_id": invitee.id, "inviter_id": code.customer_id, "arrived_at": arrived,
        "release_after": arrived + timedelta(days=rules.hold_days), "state": state, "reason": reason,
        "decided_at": None if state == "held" else ctx.now(),
    }  # fmt: skip
    if not await insert_ignore(ctx.session, Referral, values, ["invitee_id"]):
        log.info("invitee already referred", extra={"invitee_id": invitee.id})


@router.on(FriendLost, Unfollowed)
async def revoke_on_loss(event: FriendLost | Unfollowed, ctx: Context) -> None:
    """Deleting the friend (or unfollowing, for QR codes) during the hold revokes the credit."""
    column, value = ("external_userid", event.external_userid) if isinstance(event, FriendLost) else (
        "openid", event.openid)  # fmt: skip
    customer = await find_customer(ctx, column, value)
    if customer is None:
        return
    platform = Platform.WECOM_FRIEND.value if isinstance(event, FriendLost) else Platform.MP.value
    inviters = select(ReferralCode.customer_id).where(ReferralCode.platform == platform)
    reason = "invitee deleted the friend during the hold" if isinstance(event, FriendLost) else (
        "invitee unfollowed during the hold")  # fmt: skip
    await ctx.session.execute(
        update(Referral)
        .where(Referral.invitee_id == customer.id, Referral.state == "held", Referral.inviter_id.in_(inviters))
        .values(state="revoked", reason=reason, decided_at=ctx.now())
        .execution_options(synchronize_session=False)
    )


# --- release -------------------------------------------------------------------------------------


@dataclass
class ReleaseSummary:
    released: int = 0
    rejected: int = 0
    revoked: int = 0
    waiting: int = 0


async def release_due(ctx: Context) -> ReleaseSummary:
    """Decide every held referral whose hold has passed (idempotent; safe on several replicas)."""
    summary = ReleaseSummary()
    rules = _rules(ctx)
    if rules is None:
        return summary
    due = await ctx.session.scalars(
        select(Referral)
        .where(Referral.state == "held", Referral.release_after <= ctx.now())
        .order_by(Referral.arrived_at, Referral.id)
        .limit(RELEASE_BATCH)
        .with_for_update(skip_locked=True)
    )
    for referral in due.all():
        outcome = await _decide(ctx, rules, referral)
        setattr(summary, outcome, getattr(summary, outcome) + 1)
    return summary


async def _decide(ctx: Context, rules: ReferralRules, referral: Referral) -> str:
    invitee = await ctx.session.get(Customer, referral.invitee_id)
    if invitee is None:  # merged into an older customer row (same unionid): not a new customer
        return _close(ctx, referral, "rejected", "not new: the invitee turned out to be an existing customer")
    still_there = invitee.wecom_friend if rules.code_platform is Platform.WECOM_FRIEND else invitee.mp_follower
    if not still_there:
        return _close(ctx, referral, "revoked", "invitee is no longer a friend/follower at release")
    if rules.require_first_order and invitee.purchase_count <= 0:
        if ctx.now() < _aware(referral.arrived_at) + FIRST_ORDER_WAIT:
            return "waiting"
        return _close(ctx, referral, "rejected", f"no first order within {FIRST_ORDER_WAIT.days} days")
    if await _released_this_month(ctx, referral.inviter_id) >= rules.max_rewards_per_month:
        return _close(ctx, referral, "rejected", "cap reached")
    _close(ctx, referral, "released", None)
    ref = f"referral:{referral.id}"
    await grant_reward(ctx, referral.inviter_id, rules.inviter_reward, "referral", ref)
    if rules.invitee_reward is not None:
        await grant_reward(ctx, referral.invitee_id, rules.invitee_reward, "referral_welcome", ref)
    await ctx.session.flush()
    await ctx.emit(ReferralRewarded(referral.id, referral.inviter_id, referral.invitee_id))
    return "released"


def _close(ctx: Context, referral: Referral, state: str, reason: str | None) -> str:
    referral.state, referral.reason, referral.decided_at = state, reason, ctx.now()
    return state


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _released_this_month(ctx: Context, inviter_id: int) -> int:
    """Released referrals of ``inviter_id`` in the current local calendar month. The inviter's row is
    locked first (PostgreSQL), so two replicas releasing for one inviter cannot both pass the cap."""
    await ctx.session.execute(select(Customer.id).where(Customer.id == inviter_id).with_for_update())
    await ctx.session.flush()
    local = ctx.now().astimezone(ctx.settings.tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    count = await ctx.session.scalar(
        select(func.count())
        .select_from(Referral)
        .where(
            Referral.inviter_id == inviter_id,
            Referral.state == "released",
            Referral.decided_at >= start.astimezone(UTC),
            Referral.decided_at < end.astimezone(UTC),
        )
    )
    return int(count or 0)
