"""Every platform API the outbox performs is classified: safe to repeat (with why) or not (with how a
doubtful outcome is resolved). A handler that queues an unlisted API fails here, before it can be sent
twice (bot/platform/repeat.py)."""

from __future__ import annotations

import re

from bot.platform.repeat import NOT_REPEATABLE, REPEATABLE, repeatable
from tests.support.settings import REPO_ROOT

# Any platform API path written in the code that queues outbox calls (handlers and the kernel's late
# replies); the platform clients, the simulator and content sync call the platform directly.
_API = re.compile(
    r'"((?:externalcontact|message|kf|tags|user|qrcode|appchat|webhook|media|menu|customservice)/[a-z_/0-9]+)"'
)
_DIRECT = {"platform", "simulator", "sync"}


def _queued_apis() -> set[str]:
    found: set[str] = set()
    for path in [*REPO_ROOT.glob("bot/**/*.py"), *REPO_ROOT.glob("handlers/**/*.py")]:
        if _DIRECT.intersection(path.relative_to(REPO_ROOT).parts):
            continue
        found.update(_API.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_queued_api_is_classified() -> None:
    queued = _queued_apis()
    assert {"externalcontact/send_welcome_msg", "message/custom/send", "webhook/send", "kf/send_msg"} <= queued
    unlisted = sorted(api for api in queued if api not in REPEATABLE and api not in NOT_REPEATABLE)
    assert unlisted == [], f"classify these in bot/platform/repeat.py: {unlisted}"


def test_the_tables_do_not_overlap_and_unknown_apis_are_not_repeated() -> None:
    assert set(REPEATABLE).isdisjoint(NOT_REPEATABLE)
    assert all(reason.strip() for reason in [*REPEATABLE.values(), *NOT_REPEATABLE.values()])
    assert not repeatable("some/new_api")
