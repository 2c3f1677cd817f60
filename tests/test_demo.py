"""`siyu-bot demo` runs the whole story against the simulator and prints each step."""

from __future__ import annotations

from bot.demo import run_demo


async def test_demo_tells_the_story() -> None:
    lines: list[str] = []
    assert await run_demo(speed=1.0, out=lines.append) == 0
    text = "\n".join(lines)
    assert "applied: " in text and "failed: 0" in text
    assert "→ platform calls: none" in text  # the second sync makes no call
    assert "receipts stored: 1, duplicates answered without acting: 3" in text
    assert "send_welcome_msg (ok)" in text
    assert "← passive reply (text)" in text
    assert "pkgcard" in text and "retention_7d" in text and "100%" in text
