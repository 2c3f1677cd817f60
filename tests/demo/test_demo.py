"""`siyu-bot demo` runs the whole story against the simulator and prints each step."""

from __future__ import annotations

import re

from handlers import features
from handlers.demo.run import run_demo


async def test_demo_tells_the_story() -> None:
    lines: list[str] = []
    # A high speed keeps the 48-hour chapter to a few seconds; the growth loop always runs at 1×.
    assert await run_demo(features(), speed=36000, out=lines.append) == 0
    text = "\n".join(lines)
    assert "applied: " in text and "failed: 0" in text
    assert "→ platform calls: none" in text  # the second sync makes no call
    assert "receipts stored: 1, duplicates answered without acting: 3" in text
    assert "send_welcome_msg (ok)" in text
    assert "← passive reply (text)" in text
    assert "pkgcard" in text and "retention_7d" in text and "100%" in text
    assert "/_sim/clock" in text  # the simulation-only endpoint of the demo server
    assert_import_chapter(lines)
    console = r"console: http://127\.0\.0\.1:\d+/console/ — sign in as demo@siyu-bot\.local, password \S{16} "
    assert re.search(console, text)  # a one-time owner of the console, printed once
    assert_drip_chapter(lines)
    assert_webhooks(lines)


def assert_import_chapter(lines: list[str]) -> None:
    """Before chapter 1: an existing account is imported and the first group post reaches its groups."""
    chapter = "\n".join(lines[: next(i for i, line in enumerate(lines) if "content sync` makes" in line)])
    assert "Chapter 0 — day one on an existing account: 12 customers, 3 groups" in chapter
    assert "followers: 7 new, 0 already known" in chapter and "groups: 5 new" in chapter
    assert "send_welcome_msg" not in chapter and "webhook  " not in chapter  # imported: nobody welcomed
    # which post comes first depends on the weekday; each targets the 福利群 at least (content/group_sop.toml)
    assert re.search(r"fire: done; reaches [23] pre-existing groups: .*山野小食福利群1, 山野小食福利群2", chapter)


def assert_webhooks(lines: list[str]) -> None:
    """The demo's receiver verified every delivery and printed one line per event, inside the story."""
    assert "signing secret created (not shown)" in lines[2] and "whsec_" not in "\n".join(lines)
    hooks = [line.strip() for line in lines if line.startswith("    webhook  ")]
    created = [line for line in hooks if line.startswith("webhook  customer.created ")]
    assert len(created) == 24  # 1 package card + 20 live stream + 1 unattributed + 2 followers
    assert re.match(r"webhook  customer\.created +customer \d+ \(wm\w{6}…\)$", created[0])
    first = next(i for i, line in enumerate(lines) if line.startswith("    webhook  "))
    assert "package card" in lines[first - 1], "the first delivery prints inside the step that caused it"
    order_at = next(i for i, line in enumerate(lines) if "signed POST /webhooks/orders" in line)
    after_order = "\n".join(lines[order_at:])
    assert re.search(r"webhook  order\.recorded +customer \d+ \(o\w+…\)  order_id SO-DEMO-\w+  amount_cents 5900",
                     after_order)  # fmt: skip
    assert re.search(r"webhook  drip\.stopped .* reason purchased", after_order)
    for kind in ("customer.touched", "customer.tags_changed", "customer.lost", "customer.merged", "mp.followed",
                 "mp.unfollowed", "message.received", "drip.step_sent"):  # fmt: skip
        assert any(line.startswith(f"webhook  {kind} ") for line in hooks), kind
    closing = f"webhooks: {len(hooks)} deliveries, all signatures verified, 0 duplicates by webhook-id"
    assert lines[-1].strip() == closing


def assert_drip_chapter(lines: list[str]) -> None:
    """Follow → welcome → step now → +3 h → order paid → nothing at +6 h, with simulated local times."""
    chapter = "\n".join(lines[next(i for i, line in enumerate(lines) if "Chapter 2" in line) :])
    assert "simulated clock at 36000×" in chapter
    welcome, now, three_h = (
        r"← passive reply \(text\): “欢迎关注",
        r"→ \[\d\d-\d\d 09:00:0\d\] message/custom/send to the follower: “新人礼包",
        r"→ \[\d\d-\d\d 12:0\d:\d\d\] message/custom/send to the follower: “说说我们的「山野每日坚果」",
    )
    assert re.search(welcome, chapter) and re.search(now, chapter) and re.search(three_h, chapter)
    order_at = chapter.index("signed POST /webhooks/orders")
    assert '← 200 {"status": "accepted"}' in chapter[order_at:]
    assert "→ [" not in chapter[order_at:]  # nothing reaches the follower after the order
    assert "mp_48h step 3 due" in chapter and "cancelled (drip stopped: purchased)" in chapter
    assert "2 of 3 drip steps sent" in chapter and "0 after the order" in chapter
