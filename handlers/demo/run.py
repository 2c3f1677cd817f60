"""``siyu-bot demo``: the real server and a simulated WeChat on a temporary SQLite database.

A typical retail private-domain story: a brand imports the customers, groups and followers its account
already has (the first group post reaches those groups), an operator syncs the channel codes, customers
arrive through a package card, a live stream and a poster QR code, each is attributed, welcomed within
20 s and tagged; WeChat retries a callback; some customers leave; the channel report closes the loop.
Then the Official Account's 48-hour drip runs on simulated time (``--speed``). Every step is printed as it happens, from
what the simulated platform actually received, and so is every outbound webhook the step caused, as the
demo's own receiver (handlers/demo/webhooks.py) verified it.

The clock is a :class:`~bot.sim_clock.SimClock`: the settings point both platform APIs at loopback
(the rig replaces them with the simulator's URLs), so it can never run against the real platform.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.config import Settings, build_settings
from bot.db.migrate import upgrade
from bot.feature import Feature
from bot.rig import Rig
from bot.sim_clock import SimClock
from bot.simulator import SimAccounts
from handlers.demo.import_chapter import run_import_story
from handlers.demo.story import run_drip_story, run_story
from handlers.demo.webhooks import DemoReceiver, settle
from handlers.growth.simulated_corp import seed_corp
from handlers.integrations.delivery import WEBHOOK_WORKER


def demo_settings(db_path: Path, content_dir: str) -> Settings:
    acc = SimAccounts()
    return build_settings(
        {
            "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
            "content_dir": content_dir,
            "wecom": {
                "corp_id": acc.corp_id, "agent_id": acc.agent_id, "token": acc.wecom_token,
                "encoding_aes_key": acc.wecom_aes_key, "secret": acc.corp_secret,
                "api_base_url": "http://127.0.0.1/simulator",  # the rig points it at the simulator's port
            },
            "official_account": {
                "app_id": acc.app_id, "app_secret": acc.app_secret, "token": acc.mp_token,
                "encoding_aes_key": acc.mp_aes_key, "api_base_url": "http://127.0.0.1/simulator",
            },
            # the demo's own webhook receiver listens on loopback (handlers/demo/webhooks.py)
            "webhooks": {"orders_secret": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
                         "allow_private_targets": True},
            "reconcile": {"nightly": False},  # the story's 48 hours cross 03:30: no unscripted run in it
            "inbox": {"sweep_interval_seconds": 1.0},
            "outbox": {"poll_interval_seconds": 0.2},
            "logging": {"level": "WARNING", "format": "text"},
        },
        env={},
    )  # fmt: skip


def _find_content() -> str | None:
    for candidate in (Path.cwd() / "content", Path(__file__).resolve().parents[1] / "content"):
        if (candidate / "channels.toml").exists() or (candidate / "channels").is_dir():
            return str(candidate)
    return None


async def console_login(rig: Rig) -> str:
    """A one-time owner of the console for this demo's database, printed once."""
    from handlers.console.users import add_demo_owner

    async with rig.services.sessions() as session, session.begin():
        email, password = await add_demo_owner(session, rig.services.clock.now())
    return (
        f"console: {rig.base_url}/console/ — sign in as {email}, password {password} (made for this demo's "
        "database, shown once; with --keep, `siyu-bot serve` on that database keeps the console)"
    )


async def run_demo(
    features: Sequence[Feature], speed: float = 1.0, keep: bool = False, out: Callable[[str], Any] = print
) -> int:
    content_dir = _find_content()
    if content_dir is None:
        out("error: no content/ directory found; run the demo from the repository root")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="siyu-demo-"))
    db_path = workdir / "demo.db"
    settings = demo_settings(db_path, content_dir)
    await asyncio.to_thread(upgrade, settings.database.url.get())
    clock = SimClock(settings)  # 1× for the growth loop: a welcome_code lives 20 s
    rig = await Rig.start(settings, clock, features, rng=random.Random(20240611), prepare=seed_corp)
    receiver = DemoReceiver(out)
    try:
        await receiver.start()
        out(f"siyu-bot demo — server on {rig.base_url}, simulated WeChat on {rig.state_base_url}, SQLite {db_path}")
        out(f"simulated clock: GET {rig.base_url}/_sim/clock (siyu-bot sim advance --seconds N --url {rig.base_url})")
        hooks = rig.services.parts.get(WEBHOOK_WORKER) is not None  # the webhooks feature is in the list
        if hooks:
            endpoint = await receiver.subscribe(rig)
            out(f"webhook endpoint {endpoint}: every event (*) to a receiver in this process, {receiver.url}; "
                "signing secret created (not shown), each delivery verified with standardwebhooks")  # fmt: skip
        await run_import_story(rig, out, clock)
        if any(f.name == "console" for f in features):
            out(await console_login(rig))
        await run_story(rig, settings, out)
        await run_drip_story(rig, settings, out, clock, speed)
        if hooks:
            await settle(rig)
            out("\n" + receiver.closing())
    finally:
        await rig.close()
        await receiver.close()
        if keep:
            out(f"database kept at {db_path} (try: SIYU_DATABASE_URL=sqlite+aiosqlite:///{db_path} siyu-bot events)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
