"""Process-level fault harness: real ``siyu-bot serve`` processes against the simulated WeChat.

The simulator runs in the caller's event loop (:func:`bot.simulator.start_simulator` on a free port);
each bot replica is a child process started exactly as an operator would (``python -m handlers -c CONFIG
serve``), with a config that sets only what must differ from the shipped defaults: the simulator's
base URLs and test keys, the database (and Redis) URL, the port, the content folder, quieter logs.
Everything else — inbox and outbox leases, sweep and poll intervals, concurrency — is the default,
because the defaults are what runs in production.

    async with FaultHarness(tmp_path, db_url) as h:
        await h.prepare()                       # migrate + ``content sync`` against the simulator
        bot = await h.spawn("a")                # ``serve``, waits for /healthz
        run = await h.burst(h.simulator_for(bot), 200, rate=100)  # new friends through pkgcard (has a welcome)
        await asyncio.sleep(1)
        await h.when_busy(run)                  # a moment with acknowledged work not yet done
        bot.kill9()                             # ... or any other fault ...
        restarted = await h.spawn("a")          # same port
        result = await h.settle(run, "kill -9", restarted_at=restarted.started_at)
        assert result.delivered == 200 and result.duplicates == 0

Scenarios built on it: ``tests/faults/scenarios.py`` (used by the tests and ``bench/faults.py``).

Callbacks go out through a :class:`~bot.simulator.CallbackPusher` like WeChat's: 5-s timeout, 3 retries,
paced ``retry_delay`` apart (WeChat's interval is undocumented; a refused connection fails in a
millisecond, so unpaced retries would all land inside one crash-restart gap and the customer's
callback would be lost on the platform side, which is not what is under test). With several
replicas, the pusher stands in for a round-robin load balancer: a push starts at the next replica and
each retry moves on to the next one.

Counts come from the simulator's record only (what WeChat saw), never from the bot's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Self

import aiohttp

from bot.simulator import (
    AddedFriend,
    CallbackPusher,
    RunningSimulator,
    SimState,
    Simulator,
    start_simulator,
    wecom_target,
)
from handlers.content import load_content
from handlers.growth.simulated_corp import seed_corp

ROOT = Path(__file__).resolve().parents[2]
CONTENT = ROOT / "content"
WELCOME_API = "externalcontact/send_welcome_msg"
CODE_USED = 41051  # the code was used already (a repeat of a delivered welcome)
CHANNEL = "pkgcard"  # shipped content: a wecom_friend channel with a welcome message
STAFF = ("lulu", "axin")
WELCOME_LIFETIME = 20.0  # seconds a WelcomeCode is valid (docs/platform.md#welcome-messages)
RETRY_DELAY = 3.0  # seconds between a callback's attempts (see the module docstring)
HEALTHY_WITHIN = 60.0  # a loaded 2-core machine can take a while to import and start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BotProcess:
    """One ``siyu-bot serve`` child process."""

    name: str
    port: int
    config: Path
    log: Path
    proc: subprocess.Popen[bytes]
    started_at: datetime  # simulator clock (UTC) when the process was spawned
    healthy_at: datetime | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback_url(self) -> str:
        return self.base_url + "/callback/wecom"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """``kill -9``: no shutdown hooks, no lease release, connections dropped by the kernel."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in ``timeout`` seconds."""
        if not self.alive:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def children(self) -> list[int]:
        """Pids of this process's live children: the workers of ``serve --workers N``."""
        out: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text(errors="replace").rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                    out.append(int(entry.name))
        return sorted(out)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Burst:
    """Customers being added: their welcome codes and the callbacks' fates (filled in as they happen)."""

    n: int
    rate: float
    tasks: list[asyncio.Task[AddedFriend]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    last_add_at: float = 0.0  # monotonic time the last customer was added (its code issued)
    in_flight_at_fault: int | None = None  # acknowledged, not yet welcomed when the fault struck

    def acked_codes(self) -> set[str]:
        """Welcome codes of the callbacks acknowledged (HTTP 200) so far."""
        out: set[str] = set()
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                added = task.result()
                if added.delivery.ok and added.welcome_code:
                    out.add(added.welcome_code)
        return out

    async def added(self) -> list[AddedFriend]:
        return list(await asyncio.gather(*self.tasks))


@dataclass
class FaultResult:
    """What the platform saw for one burst (from the simulator's record)."""

    scenario: str
    customers: int
    acked: int  # callbacks that got a 200 within WeChat's attempts
    delivered: int  # distinct welcome codes used successfully (errcode 0)
    duplicates: int  # customers holding > 1 welcome + successful calls beyond one per code
    repeats: int  # send_welcome_msg answered 41051 (the bot repeated a delivered welcome; harmless)
    failed_calls: int  # send_welcome_msg answered another errcode (41050: the code's 20 s had passed)
    answers_lost: int  # welcome calls whose answer the simulator dropped on purpose
    recover_first_s: float | None  # restart → first welcome delivered after it
    recover_all_s: float | None  # restart → last welcome delivered
    in_flight_at_fault: int | None = None  # callbacks acknowledged but not yet welcomed when the fault struck
    errcodes: dict[int, int] = field(default_factory=dict)
    callback_answers: dict[str, int] = field(default_factory=dict)  # per attempt: "200", "503", "no answer"…

    @property
    def lost(self) -> int:
        return self.customers - self.delivered

    def summary(self) -> str:
        rec = "-" if self.recover_first_s is None else f"{self.recover_first_s:.1f}/{self.recover_all_s or 0:.1f} s"
        flight = "" if self.in_flight_at_fault is None else f", {self.in_flight_at_fault} in flight at the fault"
        return (
            f"{self.scenario}: {self.delivered}/{self.customers} welcomes delivered, {self.lost} lost{flight}, "
            f"{self.duplicates} duplicates, {self.repeats} repeats (41051), acked {self.acked}, "
            f"recover first/all {rec}, errcodes {dict(sorted(self.errcodes.items()))}, "
            f"callback answers {dict(sorted(self.callback_answers.items()))}"
        )


class FaultHarness:
    """The simulator in this loop, bot replicas as child processes, one database (and optional Redis)."""

    def __init__(
        self,
        workdir: Path,
        db_url: str,
        *,
        redis_url: str = "",
        migrate_url: str | None = None,
        retry_delay: float = RETRY_DELAY,
        seed: int = 20240611,
        extra_config: str = "",
    ) -> None:
        self.workdir = workdir
        self.extra_config = extra_config  # TOML appended to every config (e.g. a ``[webhooks]`` section)
        self.db_url = db_url
        self.migrate_url = migrate_url or db_url  # e.g. the real database when db_url goes through a proxy
        self.redis_url = redis_url
        self.retry_delay = retry_delay
        self.state = SimState(seed=seed)
        self.processes: list[BotProcess] = []
        self._sim: RunningSimulator | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ports: dict[str, int] = {}
        self._spawned = 0

    async def __aenter__(self) -> Self:
        self._sim = await start_simulator(self.state, "127.0.0.1", 0)
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        seed_corp(self.state, load_content(CONTENT))
        return self

    async def __aexit__(self, *_: object) -> None:
        for p in self.processes:
            await asyncio.to_thread(p.stop, 5.0)
        if self._http is not None:
            await self._http.close()
        if self._sim is not None:
            await self._sim.close()

    @property
    def sim(self) -> RunningSimulator:
        assert self._sim is not None, "use FaultHarness as an async context manager"
        return self._sim

    # --- configuration and processes ------------------------------------------------------------

    def port_of(self, name: str) -> int:
        """A replica keeps its port across restarts (a restarted server comes back at the same address)."""
        if name not in self._ports:
            self._ports[name] = free_port()
        return self._ports[name]

    def write_config(self, name: str, db_url: str | None = None) -> Path:
        acc = self.state.accounts
        redis = f'[redis]\nurl = "{self.redis_url}"\n' if self.redis_url else ""
        text = f"""# fault harness: simulator URLs, test keys, this database; everything else is the shipped default
content_dir = "{CONTENT}"

[server]
port = {self.port_of(name)}

[database]
url = "{db_url or self.db_url}"

[wecom]
corp_id = "{acc.corp_id}"
agent_id = {acc.agent_id}
token = "{acc.wecom_token}"
encoding_aes_key = "{acc.wecom_aes_key}"
secret = "{acc.corp_secret}"
api_base_url = "{self.sim.wecom_api_base}"

[official_account]
app_id = "{acc.app_id}"
app_secret = "{acc.app_secret}"
token = "{acc.mp_token}"
encoding_aes_key = "{acc.mp_aes_key}"
api_base_url = "{self.sim.mp_api_base}"
oauth_base_url = "{self.sim.oauth_base}"

{redis}
[logging]
level = "WARNING"
format = "text"
{self.extra_config}"""
        path = self.workdir / f"config-{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    async def cli(self, *args: str, config: Path | None = None, timeout: float = 120.0) -> str:
        """Run ``python -m handlers -c CONFIG ARGS``; raises with its output when it fails."""
        cfg = config or self.write_config("cli", self.migrate_url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handlers", "-c", str(cfg), *args,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"siyu-bot {' '.join(args)} exited {proc.returncode}:\n{text}")
        return text

    async def prepare(self) -> None:
        """``siyu-bot migrate`` and ``siyu-bot content sync`` (tags, 联系我 codes, media), as before going live."""
        await self.cli("migrate")
        await self.cli("content", "sync")

    async def spawn(
        self, name: str, *, wait: bool = True, db_url: str | None = None, serve_args: list[str] | None = None
    ) -> BotProcess:
        """Start replica ``name`` (``serve`` with ``serve_args``); with ``wait``, return once ``/healthz``
        answers 200."""
        config = self.write_config(name, db_url)
        self._spawned += 1
        log = self.workdir / f"serve-{name}-{self._spawned}.log"
        proc = _serve(config, log, serve_args or [])
        bot = BotProcess(name, self.port_of(name), config, log, proc, self.state.now())
        self.processes.append(bot)
        if wait:
            await self.wait_healthy(bot)
        return bot

    async def wait_healthy(self, bot: BotProcess, within: float = HEALTHY_WITHIN) -> None:
        assert self._http is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not bot.alive:
                raise RuntimeError(f"{bot.name} exited with {bot.proc.returncode}:\n{bot.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._http.get(bot.base_url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        bot.healthy_at = self.state.now()
                        return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{bot.name} not healthy within {within:.0f} s:\n{bot.tail()}")

    # --- customers ------------------------------------------------------------------------------

    def simulator_for(self, *bots: BotProcess | str) -> Simulator:
        """A scripted platform pushing to ``bots`` (round robin per attempt when there are several)."""
        assert self._http is not None
        urls = [b if isinstance(b, str) else b.callback_url for b in bots]
        pusher = CallbackPusher(
            self._http, wecom_target(self.state.accounts, urls[0]), clock=self.state.clock,
            retry_delay=self.retry_delay, alternates=urls[1:],
        )  # fmt: skip
        return Simulator(self.state, wecom=pusher)

    def callback_url(self, name: str) -> str:
        """Replica ``name``'s callback URL, whether or not it is running right now."""
        return f"http://127.0.0.1:{self.port_of(name)}/callback/wecom"

    async def burst(self, sim: Simulator, n: int, rate: float, channel: str = CHANNEL) -> Burst:
        """Start ``n`` new friends through ``channel``, ``rate`` per second, and return at once (the pushes,
        retries included, run in the background; :meth:`settle` waits for them)."""
        burst = Burst(n, rate)
        t0 = time.monotonic()

        async def customer(i: int) -> AddedFriend:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            burst.last_add_at = max(burst.last_add_at, time.monotonic())  # the code is issued right now
            added = await sim.add_friend(STAFF[i % len(STAFF)], state=channel)  # returns after the pushes
            assert added.welcome_code is not None
            burst.codes.append(added.welcome_code)
            return added

        burst.tasks = [asyncio.create_task(customer(i), name=f"customer-{i}") for i in range(n)]
        return burst

    async def settle(
        self, burst: Burst, scenario: str, *, restarted_at: datetime | None = None, grace: float = 1.0
    ) -> FaultResult:
        """Wait until every welcome code of ``burst`` is used or expired (20 s + ``grace`` after the last
        add), all pushes are finished, then count from the simulator's record."""
        added = await burst.added()
        codes = set(burst.codes)
        while time.monotonic() < burst.last_add_at + WELCOME_LIFETIME + grace:
            used = {c for c in codes if self.state.welcome_codes[c].used}
            if used == codes:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(grace)  # a repeat of the last welcome (41051) lands in the record too
        result = self.count(scenario, codes, added, restarted_at)
        result.in_flight_at_fault = burst.in_flight_at_fault
        return result

    def in_flight(self, burst: Burst) -> int:
        """Customers whose callback the bot acknowledged but whose welcome the platform has not seen yet."""
        called = {(c.body or {}).get("welcome_code") for c in self.state.calls_to(WELCOME_API)}
        return len(burst.acked_codes() - called)

    async def when_busy(self, burst: Burst, within: float = 1.0) -> int:
        """Wait (up to ``within`` s) for a moment with work in flight — acknowledged callbacks not yet
        welcomed — so a crash now proves something; returns how many (also kept on ``burst``)."""
        deadline = time.monotonic() + within
        n = self.in_flight(burst)
        while n == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            n = self.in_flight(burst)
        burst.in_flight_at_fault = n
        return n

    def count(
        self, scenario: str, codes: set[str], added: list[AddedFriend], restarted_at: datetime | None
    ) -> FaultResult:
        ok_calls: dict[str, list[datetime]] = {}
        errcodes: dict[int, int] = {}
        repeats = failed = lost_answers = 0
        for call in self.state.calls_to(WELCOME_API):
            code = (call.body or {}).get("welcome_code")
            if code not in codes:
                continue
            errcodes[call.errcode] = errcodes.get(call.errcode, 0) + 1
            lost_answers += call.answer_lost is not None
            if call.errcode == 0:
                ok_calls.setdefault(code, []).append(call.at)
            elif call.errcode == CODE_USED:
                repeats += 1
            else:
                failed += 1
        externals = {self.state.welcome_codes[c].external_userid for c in codes}
        per_customer = [len(self.state.contacts[x].welcomes) for x in externals]
        duplicates = sum(k - 1 for k in per_customer if k > 1) + sum(len(v) - 1 for v in ok_calls.values())
        first_s = all_s = None
        if restarted_at is not None:
            after = sorted(at for ats in ok_calls.values() for at in ats if at >= restarted_at)
            if after:
                first_s = (after[0] - restarted_at).total_seconds()
                all_s = (after[-1] - restarted_at).total_seconds()
        answers: dict[str, int] = {}
        for a in (attempt for friend in added for attempt in friend.delivery.attempts):
            key = str(a.status) if a.status is not None else "no answer"
            answers[key] = answers.get(key, 0) + 1
        return FaultResult(
            scenario=scenario, customers=len(codes), acked=sum(1 for a in added if a.delivery.ok),
            callback_answers=answers, delivered=len(ok_calls), duplicates=duplicates, repeats=repeats,
            failed_calls=failed, answers_lost=lost_answers, recover_first_s=first_s, recover_all_s=all_s,
            errcodes=errcodes,
        )  # fmt: skip


def _serve(config: Path, log: Path, args: list[str]) -> subprocess.Popen[bytes]:
    """``python -m handlers -c CONFIG serve ARGS`` with its output in ``log`` (returns at once)."""
    with log.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "handlers", "-c", str(config), "serve", *args],
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


async def reset_postgres(url: str) -> None:
    """Drop and recreate the ``public`` schema (the suite owns this database)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """The host and port a database/redis URL points at."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port
