"""离职继承 and 在职转接 against the simulator, on SQLite and PostgreSQL: a departed member's 300 customers
and their groups handed to a successor and tracked to their final state (some refuse), what pointed at the
old member re-pointed, ``staff.transfer_finished`` delivered; a handover with its message; a dry run that
changes nothing; bad input refused in one line."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from bot.actions import run_action
from bot.clock import FrozenClock
from bot.config import Settings
from bot.context import Context
from bot.db.models import Customer, OutboxCall
from bot.platform import PlatformError
from bot.rig import Rig
from bot.simulator.models import ChannelCode
from handlers.growth.tables import GroupChat, Touch, WeComRelation
from handlers.integrations.delivery import WEBHOOK_WORKER
from handlers.integrations.endpoints import add_endpoint
from handlers.interactions.tables import ReferralCode
from handlers.sop.drip_enrol import active_staff
from handlers.staff import directory
from handlers.staff.commands import departed, handover, show_audit, show_transfers, transfer
from handlers.staff.successors import Rule, TransferInputError, parse_rule
from handlers.staff.tables import StaffAudit, StaffGroupTransfer, StaffMember, StaffTransfer
from handlers.staff.transfers import transfer_body
from tests.integrations.receiver import Receiver
from tests.staff.helpers import DAY, MORNING, depart, import_corp, poll, staff_command
from tests.support.apps import count, drain, rows, start_rig
from tests.support.settings import make_settings

CUSTOMERS, GROUPS, REFUSING = 300, 4, 7


@pytest.fixture
async def rig(db_url: str, clock: FrozenClock) -> AsyncIterator[Rig]:
    clock.set(MORNING)
    settings: Settings = make_settings(db_url, webhooks={"allow_private_targets": True})
    rig = await start_rig(settings, clock, rng=7)
    s = rig.state
    s.add_staff("leaver").department = [7]
    s.add_staff("heir").department = [7]
    s.add_staff("other").department = [9]
    for i in range(CUSTOMERS):
        s.add_contact("leaver", f"wmC{i:04d}", name=f"客户{i}")
    for g in range(GROUPS):
        s.add_group("leaver", name=f"群{g}", chat_id=f"wrG{g}")
    s.add_contact("other", "wmX0001")
    s.add_contact("other", "wmX0002")
    await import_corp(rig, clock)
    yield rig
    await rig.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


async def test_departed_members_customers_are_tracked_to_their_final_state(
    rig: Rig, clock: FrozenClock, receiver: Receiver
) -> None:
    hook = "staff.transfer_finished"
    made = await run_action(rig.services, lambda ctx: add_endpoint(
        ctx.session, receiver.url, hook, ordered=False, allow_private=True, now=ctx.now()))  # fmt: skip
    receiver.secret = made.secret
    invite = await _invite_code(rig, "wmC0000")
    await depart(rig, "leaver")

    code, out = await staff_command(rig, clock, lambda t: transfer(t, "leaver", parse_rule("heir", None), True, False))
    assert code == 0, out
    assert "→ heir: 300 customers, 4 groups" in out
    await drain(rig, clock)

    calls = rig.state.calls_to("externalcontact/resigned/transfer_customer")
    assert [len(c.body["external_userid"]) for c in calls if c.body] == [100, 100, 100]
    assert Counter(r.state for r in await rows(rig, StaffTransfer)) == {"waiting": CUSTOMERS}
    assert Counter(g.state for g in await rows(rig, StaffGroupTransfer)) == {"succeeded": GROUPS}
    assert {g.owner for g in await rows(rig, GroupChat, GroupChat.chat_id.like("wrG%"))} == {"heir"}
    assert {g.owner for g in rig.state.groups.values() if g.chat_id.startswith("wrG")} == {"heir"}

    for i in range(REFUSING):  # the customer taps 拒绝 within the 24 hours → transfer_fail
        await rig.sim.refuse_transfer(f"wmC{i:04d}")
    await drain(rig, clock)
    assert await count(rig, StaffTransfer, StaffTransfer.state == "refused") == REFUSING

    assert await poll(rig, clock) == 0  # nothing due before the platform's 24 hours
    clock.advance(DAY + DAY / 24)
    assert await poll(rig, clock) == 1
    result = rig.state.last_call("externalcontact/resigned/transfer_result")
    assert result.body == {"handover_userid": "leaver", "takeover_userid": "heir"}
    finals = Counter(r.state for r in await rows(rig, StaffTransfer))
    assert finals == {"succeeded": CUSTOMERS - REFUSING, "refused": REFUSING}
    assert await poll(rig, clock) == 0  # every row final: the job stops asking

    moved = await _customer(rig, "wmC0100")
    assert await run_action(rig.services, lambda ctx: active_staff(ctx, moved.id)) == "heir"  # drips send via heir
    old = await rows(rig, WeComRelation, WeComRelation.customer_id == moved.id, WeComRelation.staff_userid == "leaver")
    assert [r.active for r in old] == [False]
    assert await count(rig, Touch, Touch.staff_userid == "leaver", Touch.customer_id == moved.id) == 0
    assert await count(rig, Touch, Touch.staff_userid == "heir", Touch.customer_id == moved.id) == 1
    refused = await _customer(rig, "wmC0001")
    assert await run_action(rig.services, lambda ctx: active_staff(ctx, refused.id)) is None
    update = rig.state.calls_to("externalcontact/update_contact_way")
    assert update == []  # wmC0000 refused: its invite code stays where it was
    assert rig.state.contact_ways[invite].fields["user"] == ["leaver"]

    await rig.services.parts[WEBHOOK_WORKER].drain()
    assert receiver.types() == ["staff.transfer_finished"] * CUSTOMERS
    statuses = Counter(e["data"]["status"] for e in receiver.events)
    assert statuses == {"succeeded": CUSTOMERS - REFUSING, "refused": REFUSING}
    event = next(e for e in receiver.events if e["data"]["external_userid"] == "wmC0100")
    assert event["data"]["customer"]["id"] == moved.id
    assert (event["data"]["from_userid"], event["data"]["to_userid"], event["data"]["kind"]) == (
        "leaver", "heir", "resigned")  # fmt: skip

    code, report = await staff_command(rig, clock, lambda t: show_transfers(t, True))
    assert code == 0 and f"succeeded       {CUSTOMERS - REFUSING}" in report and "pending" not in report
    code, audit = await staff_command(rig, clock, show_audit)
    assert "transfer from leaver (to:heir): 300 customers, 4 groups" in audit


async def test_invite_code_follows_the_customer_to_the_successor(rig: Rig, clock: FrozenClock) -> None:
    invite = await _invite_code(rig, "wmC0200")
    await run_action(rig.services, directory.refresh)  # the daily directory job, while leaver is employed
    await drain(rig, clock)
    assert {m.userid: m.departments for m in await rows(rig, StaffMember)}["leaver"] == {"ids": [7]}
    await depart(rig, "leaver")
    plan = parse_rule(None, "same-department")  # heir shares department 7; other is in 9
    code, out = await staff_command(rig, clock, lambda t: transfer(t, "leaver", plan, False, False))
    assert code == 0 and "→ heir: 300 customers, 0 groups" in out, out
    await drain(rig, clock)
    clock.advance(DAY)
    await poll(rig, clock)
    assert rig.state.contact_ways[invite].fields["user"] == ["heir"]


async def test_limit_exceeded_at_takeover_is_told_by_callback(rig: Rig, clock: FrozenClock) -> None:
    rig.state.staff["heir"].customer_limit = 0
    await depart(rig, "leaver")
    code, out = await staff_command(rig, clock, lambda t: transfer(t, "leaver", Rule("to", ("heir",)), False, False))
    assert code == 0, out
    await drain(rig, clock)
    clock.advance(DAY)
    await poll(rig, clock)  # the platform decides at takeover time: status 4, and transfer_fail callbacks
    await rig.sim.push_outgoing()
    await drain(rig, clock)
    assert Counter(r.state for r in await rows(rig, StaffTransfer)) == {"limit_exceeded": CUSTOMERS}
    assert {r.status for r in await rows(rig, StaffTransfer)} == {4}


async def test_handover_of_an_employed_member_carries_the_message(rig: Rig, clock: FrozenClock) -> None:
    message = "您好，后续由同事 heir 为您服务。"
    code, out = await staff_command(
        rig, clock, lambda t: handover(t, "other", "heir", message, ["wmX0001"], False, False)
    )
    assert code == 0 and "→ heir: 1 customers" in out, out
    await drain(rig, clock)
    call = rig.state.last_call("externalcontact/transfer_customer")
    assert call.body == {"handover_userid": "other", "takeover_userid": "heir", "external_userid": ["wmX0001"],
                         "transfer_success_msg": message}  # fmt: skip
    clock.advance(DAY)
    await poll(rig, clock)
    assert rig.state.last_call("externalcontact/transfer_result").body == {
        "handover_userid": "other", "takeover_userid": "heir"}  # fmt: skip
    [row] = await rows(rig, StaffTransfer)
    assert (row.kind, row.state, row.status) == ("onjob", "succeeded", 1)
    assert rig.state.contacts["wmX0001"].follow["heir"].active
    assert rig.state.contacts["wmX0002"].follow["other"].active  # not chosen: stays


async def test_dry_run_changes_nothing(rig: Rig, clock: FrozenClock) -> None:
    await depart(rig, "leaver")
    code, out = await staff_command(rig, clock, departed)
    assert code == 0 and out.splitlines()[1].split()[0] == "leaver" and out.split()[-2:] == ["300", "4"], out
    before = await count(rig, OutboxCall)
    code, out = await staff_command(
        rig, clock, lambda t: transfer(t, "leaver", parse_rule(None, "round-robin:heir,other"), True, True)
    )
    assert code == 0
    assert "plan (dry run, nothing changed)" in out
    assert "→ heir: 150 customers, 2 groups" in out and "→ other: 150 customers, 2 groups" in out
    assert await count(rig, OutboxCall) == before
    for table in (StaffTransfer, StaffGroupTransfer, StaffAudit):
        assert await count(rig, table) == 0
    assert rig.state.calls_to("externalcontact/resigned/transfer_customer") == []


async def test_bad_input_is_refused_in_one_line_and_changes_nothing(rig: Rig, clock: FrozenClock) -> None:
    code, out = await staff_command(rig, clock, lambda t: transfer(t, "leaver", Rule("to", ("heir",)), False, False))
    assert (code, out.strip()) == (
        2,
        "error: leaver has not left (still a member with customers): use `staff handover`",
    )
    await depart(rig, "leaver")
    code, out = await staff_command(rig, clock, lambda t: transfer(t, "leaver", Rule("to", ("nobody",)), False, False))
    assert (code, out.strip()) == (2, "error: unknown or departed staff member(s): nobody")
    code, out = await staff_command(rig, clock, lambda t: transfer(t, "ghost", Rule("to", ("heir",)), False, False))
    assert code == 2 and "no unassigned customers or groups of ghost" in out
    code, out = await staff_command(rig, clock, lambda t: handover(t, "other", "heir", "x" * 201, [], False, False))
    assert code == 2 and "--message must be 1..200 characters" in out
    code, out = await staff_command(rig, clock, lambda t: handover(t, "other", "heir", "hi", ["wmC0001"], False, False))
    assert (code, out.strip()) == (2, "error: not customers of other: wmC0001")
    with pytest.raises(TransferInputError, match="101 customers in one call: the platform takes at most 100"):
        transfer_body("resigned", "leaver", "heir", [f"wm{i}" for i in range(101)], None)
    with pytest.raises(TransferInputError, match="exactly one of --to"):
        parse_rule("heir", "same-department")
    with pytest.raises(TransferInputError, match="unknown rule"):
        parse_rule(None, "alphabetical")
    assert await count(rig, StaffTransfer) == 0 and await count(rig, StaffAudit) == 0


async def _customer(rig: Rig, ext: str) -> Customer:
    [found] = await rows(rig, Customer, Customer.external_userid == ext)
    return found


async def _invite_code(rig: Rig, ext: str) -> str:
    """A personal 联系我 invite code owned by the customer's member (as referral makes them)."""
    config_id = rig.state.new_id("cfg", 16)
    rig.state.contact_ways[config_id] = ChannelCode(config_id, {"type": 1, "scene": 2, "user": ["leaver"]}, None)
    customer = await _customer(rig, ext)

    async def add(ctx: Context) -> None:
        ctx.session.add(ReferralCode(customer_id=customer.id, code=f"ref_{ext[-4:]}", platform="wecom_friend",
                                     remote_id=config_id, created_at=ctx.now()))  # fmt: skip

    await run_action(rig.services, add)
    return config_id


async def test_more_than_100_customers_in_one_call_is_the_platforms_40058(rig: Rig) -> None:
    await depart(rig, "leaver")
    client = rig.services.clients["wecom"]
    body = {"handover_userid": "leaver", "takeover_userid": "heir", "external_userid": [f"wm{i}" for i in range(101)]}
    with pytest.raises(PlatformError) as raised:
        await client.call("externalcontact/resigned/transfer_customer", body)
    assert raised.value.errcode == 40058
    body["external_userid"] = ["wmC0001"]
    body["handover_userid"] = "other"
    with pytest.raises(PlatformError) as raised:
        await client.call("externalcontact/resigned/transfer_customer", body)
    assert raised.value.errcode == 40097  # other has not left
    assert await count(rig, StaffTransfer) == 0
