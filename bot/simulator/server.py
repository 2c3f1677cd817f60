"""Run the simulator as a real HTTP server (demo, developers): :func:`start_simulator` / ``main``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass

from aiohttp import web

from bot.sim_clock import ScaledClock
from bot.simulator.app import make_sim_app
from bot.simulator.seeds import seed_existing_account
from bot.simulator.state import SimState


@dataclass
class RunningSimulator:
    """A started simulator; ``close()`` stops it. Configure the bot with the two ``*_api_base`` URLs."""

    state: SimState
    runner: web.AppRunner
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def wecom_api_base(self) -> str:
        return f"{self.base_url}/wecom"

    @property
    def mp_api_base(self) -> str:
        return f"{self.base_url}/mp"

    @property
    def oauth_base(self) -> str:
        """``official_account.oauth_base_url``: the web-authorisation pages (:mod:`bot.simulator.oauth`)."""
        return self.base_url

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_simulator(state: SimState, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Serve ``state`` on ``host:port`` (``port=0`` picks a free port) and return at once."""
    runner = web.AppRunner(make_sim_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = [addr for addr in runner.addresses if isinstance(addr, tuple)]
    return RunningSimulator(state, runner, host, int(sockets[0][1]) if sockets else port)


REHEARSAL_CONFIG = """# siyu-bot against the local simulator (written by python -m bot.simulator --write-config).
# Simulated credentials only: every platform URL is this simulator (loopback), so `serve --rehearse` runs.
content_dir = "content"

[database]
url = "sqlite+aiosqlite:///var/rehearsal.db"

[wecom]
corp_id = "{a.corp_id}"
agent_id = {a.agent_id}
secret = "{a.corp_secret}"
token = "{a.wecom_token}"
encoding_aes_key = "{a.wecom_aes_key}"
api_base_url = "{sim.wecom_api_base}"

[official_account]
app_id = "{a.app_id}"
app_secret = "{a.app_secret}"
token = "{a.mp_token}"
encoding_aes_key = "{a.mp_aes_key}"
api_base_url = "{sim.mp_api_base}"
oauth_base_url = "{sim.oauth_base}"

[logging]
format = "text"
"""


def write_config(path: str, sim: RunningSimulator) -> None:
    """A bot config pointing at this simulator with its credentials (for ``serve --rehearse``)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(REHEARSAL_CONFIG.format(a=sim.state.accounts, sim=sim))


async def serve_forever(
    host: str, port: int, seed: int, speed: float = 1.0, existing: bool = False, config: str | None = None
) -> None:
    state = SimState(seed=seed, clock=ScaledClock(speed=speed))
    if existing:
        account = seed_existing_account(state)
        print(f"siyu-bot simulator: an existing account: {len(account.customers)} customers, "
              f"{len(account.groups)} groups, {len(account.followers)} followers", flush=True)  # fmt: skip
    sim = await start_simulator(state, host, port)
    if config:
        write_config(config, sim)
        print(f"siyu-bot simulator: wrote {config} (siyu-bot -c {config} …)", flush=True)
    print(f"siyu-bot simulator: wecom.api_base_url = {sim.wecom_api_base}", flush=True)
    print(f"siyu-bot simulator: official_account.api_base_url = {sim.mp_api_base}", flush=True)
    print(f"siyu-bot simulator: official_account.oauth_base_url = {sim.oauth_base}", flush=True)
    print(f"siyu-bot simulator: clock at {speed:g}× on {sim.base_url}/_sim/clock "
          f"(siyu-bot sim advance --url {sim.base_url} --seconds N)", flush=True)  # fmt: skip
    try:
        await asyncio.Event().wait()
    finally:
        await sim.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.simulator [--host H] [--port P] [--seed N] [--speed X]``; stop with Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m bot.simulator", description="Local WeCom/OA API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (rehearsals)")
    parser.add_argument(
        "--existing-account", action="store_true", help="start with customers, groups and followers to import"
    )
    parser.add_argument("--write-config", metavar="PATH", help="write a siyu-bot config for this simulator")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_forever(args.host, args.port, args.seed, args.speed, args.existing_account, args.write_config)
        )
