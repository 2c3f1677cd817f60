"""Referral (老带新) through the simulator: personal 联系我 code → arrival credited → hold → release / revoke / cap."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.actions import run_action
from bot.clock import FrozenClock
from bot.config import Settings
from bot.content import Platform
from bot.context import Context
from bot.db.models import Customer
from bot.rig import Rig
from handlers.growth.tables import CustomerTag
from handlers.interactions.content import interactions_of
from handlers.interactions.content.referral import REFERRAL
from handlers.interactions.referral import ReleaseSummary, invite_code_for, release_due
from handlers.interactions.tables import PointsBalance, Referral, ReferralCode
from tests.support.apps import start_rig

HOLD = timedelta(days=7, minutes=1)


@pytest.fixture
async def rig(settings: Settings, clock: FrozenClock) -> AsyncIterator[Rig]:
    rig = await start_rig(settings, clock, rng=11)
    yield rig
    await rig.close()


async def _customer_id(rig: Rig, column: str, value: str) -> int:
    async with rig.services.sessions() as s:
        found = await s.scalar(select(Customer.id).where(getattr(Customer, column) == value))
        assert found is not None
        return int(found)


async def _inviter(rig: Rig) -> tuple[int, str]:
    added = await rig.sim.add_friend("lulu", state="pkgcard")
    await rig.drain()
    inviter = await _customer_id(rig, "external_userid", added.external_userid)

    async def code_of(ctx: Context) -> str:
        return (await invite_code_for(ctx, inviter)).code

    code = await run_action(rig.services, code_of)
    await rig.drain()
    return inviter, code


async def _release(rig: Rig) -> ReleaseSummary:
    return await run_action(rig.services, release_due)


async def _referrals(rig: Rig) -> list[Referral]:
    async with rig.services.sessions() as s:
        return list((await s.scalars(select(Referral).order_by(Referral.id))).all())


async def _balance(rig: Rig, customer_id: int) -> int:
    async with rig.services.sessions() as s:
        found = await s.scalar(select(PointsBalance.balance).where(PointsBalance.customer_id == customer_id))
        return int(found or 0)


async def _first_order(rig: Rig, external_userids: list[str]) -> None:
    async with rig.services.sessions() as s, s.begin():
        await s.execute(update(Customer).where(Customer.external_userid.in_(external_userids)).values(purchase_count=1))


async def test_personal_code_is_a_contact_way_with_the_code_as_state(rig: Rig) -> None:
    inviter, code = await _inviter(rig)
    assert code.startswith("ref_") and len(code) <= 30
    call = rig.state.last_call("externalcontact/add_contact_way")
    assert call.errcode == 0 and call.body is not None
    assert call.body["state"] == code and call.body["user"] == ["lulu"] and call.body["scene"] == 2
    async with rig.services.sessions() as s:
        row = await s.get(ReferralCode, inviter)
        assert row is not None and row.remote_id == call.response["config_id"] and row.qr_url

    async def again(ctx: Context) -> str:
        return (await invite_code_for(ctx, inviter)).code

    assert await run_action(rig.services, again) == code  # one code per customer
    await rig.drain()
    assert len(rig.state.calls_to("externalcontact/add_contact_way")) == 1


async def test_released_after_the_hold_with_a_first_order(rig: Rig, clock: FrozenClock) -> None:
    inviter, code = await _inviter(rig)
    invitee = await rig.sim.add_friend("lulu", state=code)
    await rig.drain()
    [held] = await _referrals(rig)
    assert (held.state, held.inviter_id) == ("held", inviter)
    assert await _release(rig) == ReleaseSummary()  # the hold has not passed
    clock.advance(HOLD)
    assert (await _release(rig)).waiting == 1  # no first order yet: keeps waiting
    await _first_order(rig, [invitee.external_userid])
    assert (await _release(rig)).released == 1
    [done] = await _referrals(rig)
    assert done.state == "released"
    assert await _balance(rig, inviter) == 100
    assert await _balance(rig, done.invitee_id) == 20
    async with rig.services.sessions() as s:
        tags = (await s.scalars(select(CustomerTag.tag).where(CustomerTag.customer_id == inviter))).all()
        assert "互动/老带新达人" in tags
    assert (await _release(rig)) == ReleaseSummary()  # idempotent
    assert await _balance(rig, inviter) == 100


async def test_invitee_deleting_within_the_hold_releases_no_reward(rig: Rig, clock: FrozenClock) -> None:
    inviter, code = await _inviter(rig)
    invitee = await rig.sim.add_friend("lulu", state=code)
    await rig.drain()
    await _first_order(rig, [invitee.external_userid])
    clock.advance(timedelta(days=2))
    await rig.sim.delete_friend_by_customer("lulu", invitee.external_userid)
    await rig.drain()
    [revoked] = await _referrals(rig)
    assert revoked.state == "revoked" and "deleted" in (revoked.reason or "")
    clock.advance(HOLD)
    assert await _release(rig) == ReleaseSummary()
    assert await _balance(rig, inviter) == 0


async def test_no_first_order_within_the_limit_is_rejected(rig: Rig, clock: FrozenClock) -> None:
    _, code = await _inviter(rig)
    await rig.sim.add_friend("lulu", state=code)
    await rig.drain()
    clock.advance(timedelta(days=31))
    assert (await _release(rig)).rejected == 1
    [rejected] = await _referrals(rig)
    assert rejected.state == "rejected" and "first order" in (rejected.reason or "")


async def test_fifty_invitees_beyond_the_monthly_cap_release_no_more_rewards(rig: Rig, clock: FrozenClock) -> None:
    inviter, code = await _inviter(rig)
    invitees = await asyncio.gather(*(rig.sim.add_friend("lulu", state=code) for _ in range(50)))
    await rig.drain()
    assert [r.state for r in await _referrals(rig)] == ["held"] * 50
    await _first_order(rig, [i.external_userid for i in invitees])
    clock.advance(HOLD)
    summary = await _release(rig)
    assert (summary.released, summary.rejected) == (10, 40)
    rows = await _referrals(rig)
    assert {r.reason for r in rows if r.state == "rejected"} == {"cap reached"}
    assert await _balance(rig, inviter) == 10 * 100


async def test_existing_customers_and_self_invites_are_not_credited(rig: Rig) -> None:
    inviter, code = await _inviter(rig)
    async with rig.services.sessions() as s:
        own = await s.scalar(select(Customer.external_userid).where(Customer.id == inviter))
    known = await rig.sim.add_friend("axin", state="pkgcard")
    await rig.drain()
    await rig.sim.add_friend("lulu", external_userid=known.external_userid, state=code)  # existed before
    await rig.sim.add_friend("axin", external_userid=own, state=code)  # the inviter adds another member
    await rig.drain()
    reasons = {r.reason for r in await _referrals(rig)}
    assert reasons == {"not new: the customer existed before this arrival", "self-invite"}
    assert all(r.state == "rejected" for r in await _referrals(rig))


async def test_official_account_codes_credit_a_new_follower(settings: Settings, clock: FrozenClock) -> None:
    rig = await start_rig(settings, clock, rng=2)
    try:
        rules = interactions_of(rig.services.content).referral
        assert rules is not None
        mp_rules = dataclasses.replace(rules, code_platform=Platform.MP)
        content = rig.services.content
        rig.services.content = dataclasses.replace(content, sections={**content.sections, REFERRAL.key: (mp_rules,)})
        inviter_openid = (await rig.sim.follow()).openid
        await rig.drain()
        inviter = await _customer_id(rig, "openid", inviter_openid)

        async def code_of(ctx: Context) -> str:
            return (await invite_code_for(ctx, inviter)).code

        code = await run_action(rig.services, code_of)
        await rig.drain()
        qr = rig.state.last_call("qrcode/create")
        assert qr.body is not None and qr.body["action_info"]["scene"]["scene_str"] == code
        invitee = await rig.sim.follow(scene=code)
        await rig.drain()
        [held] = await _referrals(rig)
        assert held.state == "held" and held.invitee_id == await _customer_id(rig, "openid", invitee.openid)
        await rig.sim.unfollow(invitee.openid)
        await rig.drain()
        assert [r.state for r in await _referrals(rig)] == ["revoked"]
    finally:
        await rig.close()
