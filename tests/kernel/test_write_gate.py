"""The SQLite write gate: one holder, urgent waiters (the inbox writer) first, hand-over without sleeps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import DatabaseConfig, DatabaseURL
from bot.db.engine import make_engine
from bot.db.gate import WriteGate, gate_of


async def test_urgent_waiters_go_before_earlier_normal_ones() -> None:
    gate = WriteGate()
    await gate.acquire()
    order: list[str] = []

    async def take(name: str, urgent: bool) -> None:
        await gate.acquire(urgent=urgent)
        order.append(name)
        gate.release()

    tasks = [asyncio.create_task(take("handler-1", False)), asyncio.create_task(take("handler-2", False))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("inbox", True)))
    await asyncio.sleep(0)
    assert gate.waiting == 3
    gate.release()
    await asyncio.gather(*tasks)
    assert order == ["inbox", "handler-1", "handler-2"]
    assert not gate.held


async def test_a_cancelled_waiter_neither_keeps_nor_loses_the_gate() -> None:
    gate = WriteGate()
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.release()
    assert not gate.held and gate.waiting == 0
    await asyncio.wait_for(gate.acquire(urgent=True), 1)  # free again


async def test_the_sqlite_engine_holds_the_gate_while_a_connection_is_out(tmp_path: Path) -> None:
    engine = make_engine(DatabaseConfig(url=DatabaseURL(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")))
    gate = gate_of(engine)
    assert gate is not None
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
            assert gate.held
            inbox = asyncio.create_task(gate.acquire(urgent=True))
            await asyncio.sleep(0.01)
            assert not inbox.done()  # the writer waits for the transaction, not for a busy-timeout sleep
        await asyncio.wait_for(inbox, 1)  # handed over the moment the connection came back
        gate.release()
        assert not gate.held
    finally:
        await engine.dispose()


async def test_urgent_writes_check_out_ahead_of_queued_transactions(tmp_path: Path) -> None:
    """A welcome's outbox claim waits for the transaction in progress, never behind the handler queue."""
    import contextlib

    from bot.db.gate import urgent_writes

    engine = make_engine(DatabaseConfig(url=DatabaseURL(f"sqlite+aiosqlite:///{tmp_path / 'u.db'}")))
    order: list[str] = []

    async def transaction(name: str, urgent: bool) -> None:
        with urgent_writes() if urgent else contextlib.nullcontext():
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
                order.append(name)

    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
            tasks = [asyncio.create_task(transaction(f"handler-{i}", False)) for i in (1, 2)]
            await asyncio.sleep(0.01)
            tasks.append(asyncio.create_task(transaction("welcome", True)))
            await asyncio.sleep(0.01)
            assert order == []
        await asyncio.gather(*tasks)
        assert order == ["welcome", "handler-1", "handler-2"]
    finally:
        await engine.dispose()
