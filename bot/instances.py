"""Which siyu-bot processes are alive: an instance row with a heartbeat per process.

Work in progress names the process doing it (``receipts.owner``, ``outbox.owner``). Instead of leases
— a lease long enough for slow work is too long for a 20-second welcome_code after a crash — rows are
free as soon as their owner is known to be dead:

* **stopped**: it shut down cleanly (``stopped_at`` set on the way out);
* **gone from this host**: an instance registered on the same host (hostname and pid namespace) whose
  pid no longer runs, or runs a different process (start time differs). A restarted ``serve`` thus
  frees its killed predecessor's rows the moment it starts;
* **silent**: no heartbeat for ``dead_after_seconds`` — a replica on another host that died.

Liveness is judged on the wall clock, never the simulated clock of a rehearsal: a sped-up clock must
not make a healthy process look dead.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.background import Background
from bot.config import InstancesConfig
from bot.db.models import Instance

log = logging.getLogger(__name__)


def _wall() -> datetime:
    return datetime.now(UTC)


def host_key() -> str:
    """Hostname plus pid namespace: two instances with the same key can check each other's pids."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "-"
    return f"{socket.gethostname()}|{namespace}"[:255]


def process_started(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot) or None when no such process runs."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return ""  # no /proc access: fall back to "exists" (below)
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def pid_alive(pid: int, started: str) -> bool:
    now_started = process_started(pid)
    if now_started is None:
        return False
    if now_started == "" or started == "":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return now_started == started


class Instances:
    """This process's instance row, its heartbeat, and who else is alive."""

    def __init__(self, engine: AsyncEngine, cfg: InstancesConfig) -> None:
        self.id = uuid.uuid4().hex
        self._engine = engine
        self._cfg = cfg
        self._host = host_key()
        self._pid = os.getpid()
        self._started = process_started(self._pid) or ""
        self._background = Background("instances")

    def __repr__(self) -> str:
        return f"Instances(id={self.id!r}, pid={self._pid})"

    async def register(self) -> None:
        """Insert this process's row and declare this host's dead instances dead (their rows are free)."""
        now = _wall()
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(Instance).values(
                    id=self.id, host=self._host, pid=self._pid, pid_started=self._started,
                    started_at=now, heartbeat_at=now, stopped_at=None,
                )
            )  # fmt: skip
        async with self._engine.begin() as conn:  # forget instances that ended more than a day ago
            old = now - timedelta(days=1)
            await conn.execute(delete(Instance).where(Instance.heartbeat_at < old))
        buried = await self.bury_local_dead()
        if buried:
            log.warning("took over from %d dead instance(s) on this host", len(buried))

    def start(self) -> None:
        self._background.every("heartbeat", self._cfg.heartbeat_seconds, self._beat)

    async def stop(self) -> None:
        """Stop beating and mark the row stopped: what this process still holds is free for others now."""
        await self._background.stop()
        try:
            async with self._engine.begin() as conn:
                await conn.execute(update(Instance).where(Instance.id == self.id).values(stopped_at=_wall()))
        except Exception:
            log.warning("could not mark this instance stopped; others take over after its heartbeat ages")

    async def _beat(self) -> None:
        try:
            async with self._engine.begin() as conn:
                res = await conn.execute(
                    update(Instance).where(Instance.id == self.id).values(heartbeat_at=_wall(), stopped_at=None)
                )
                if res.rowcount != 1:  # removed by an operator: come back
                    await conn.execute(
                        insert(Instance).values(
                            id=self.id, host=self._host, pid=self._pid, pid_started=self._started,
                            started_at=_wall(), heartbeat_at=_wall(), stopped_at=None,
                        )
                    )  # fmt: skip
        except Exception:
            log.warning("heartbeat failed; retrying", exc_info=True)

    async def live_ids(self) -> set[str]:
        """Instances whose work must not be taken: this one, and every other that beats and runs."""
        horizon = _wall() - timedelta(seconds=self._cfg.dead_after_seconds)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Instance.id, Instance.host, Instance.pid, Instance.pid_started).where(
                        Instance.stopped_at.is_(None), Instance.heartbeat_at >= horizon
                    )
                )
            ).all()
        live = {self.id}
        dead: list[str] = []
        for iid, host, pid, started in rows:
            if iid == self.id:
                continue
            if host == self._host and not pid_alive(pid, started):
                dead.append(iid)
            else:
                live.add(iid)
        if dead:
            await self._mark_stopped(dead)
        return live

    async def bury_local_dead(self) -> list[str]:
        """Mark stopped every instance of this host whose process is gone; returns their ids."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Instance.id, Instance.pid, Instance.pid_started).where(
                        Instance.stopped_at.is_(None), Instance.host == self._host, Instance.id != self.id
                    )
                )
            ).all()
        dead = [iid for iid, pid, started in rows if not pid_alive(pid, started)]
        if dead:
            await self._mark_stopped(dead)
        return dead

    async def _mark_stopped(self, ids: Iterable[str]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Instance)
                .where(Instance.id.in_(list(ids)), Instance.stopped_at.is_(None))
                .values(stopped_at=_wall())
            )
