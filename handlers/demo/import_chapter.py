"""Chapter 0 of ``siyu-bot demo``: day one on an account that already has customers, groups and followers.

The simulated platform is seeded with an existing account (:func:`bot.simulator.seeds.seed_existing_account`:
customers who came through known channel codes and none, groups, Official Account followers), the real
``siyu-bot import`` reads it, and the first scheduled group post then reaches the groups that existed
before siyu-bot (without the import it would have 0 targets).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.rig import Rig
from bot.scheduler import due_fires
from bot.sim_clock import SimClock
from bot.simulator.seeds import seed_existing_account
from handlers.demo.story import Narrator, Out
from handlers.demo.webhooks import settle
from handlers.growth.importer import import_command
from handlers.sop.content import sop_of
from handlers.sop.group_sop import GroupSop
from handlers.sop.tables import GroupFire

LOOK_AHEAD = timedelta(days=8)  # every weekly post fires once in this window


async def run_import_story(rig: Rig, out: Out, clock: SimClock) -> None:
    settings = rig.services.settings
    n = Narrator(rig, settings, out)
    account = seed_existing_account(rig.state)
    n.step(
        f"Chapter 0 — day one on an existing account: {len(account.customers)} customers, "
        f"{len(account.groups)} groups ({', '.join(account.groups.values())}), {len(account.followers)} followers"
    )
    n.step("Operator: `siyu-bot import` reads them all (nobody is welcomed; stats keep them apart)")
    buf = io.StringIO()
    if await import_command(settings, buf, clock=clock) != 0:
        raise RuntimeError("import failed: " + buf.getvalue())
    for line in buf.getvalue().splitlines():
        if "ETA" not in line:  # the progress lines
            out("    " + line)
    n.summarise_calls()
    post_id, at = due_fires(
        sop_of(rig.services.content).group_posts, clock.now(), clock.now() + LOOK_AHEAD, settings.tz
    )[0]
    clock.advance(at - clock.now())
    post = next(p for p in sop_of(rig.services.content).group_posts if p.id == post_id)
    n.step(f"The first scheduled group post, {post.name} ({post_id}), fires")
    result = await GroupSop(rig.services).fire(post_id, at)
    await settle(rig)
    names = sorted(account.groups[c] for c in await _reached(rig, post_id, at) if c in account.groups)
    out(f"    fire: {result}; reaches {len(names)} pre-existing groups: {', '.join(names)}")
    n.summarise_calls()


async def _reached(rig: Rig, post_id: str, at: datetime) -> set[str]:
    """The groups the fire's targets cover (its ``group_fires`` rows)."""
    async with rig.services.sessions() as session:
        fires = await session.scalars(
            select(GroupFire).where(GroupFire.post_id == post_id, GroupFire.fire_at == at, GroupFire.target != "post")
        )
        return {str(c) for f in fires.all() for c in f.chat_ids.get("chat_ids") or ()}
