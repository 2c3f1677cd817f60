"""The features, and the one list that composes them into siyu-bot.

Each package holds one feature: its handlers, tables, reports, commands, pages and jobs, declared as a
:class:`bot.feature.Feature` in its ``feature.py``. The kernel (``bot/``) imports none of them; this list
(the order in which their handlers run for the same event) is handed to it by :func:`main` and the rig.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.feature import Feature


def features() -> list[Feature]:
    from handlers.api.feature import API
    from handlers.console.feature import CONSOLE_FEATURE
    from handlers.demo.feature import DEMO
    from handlers.growth.feature import GROWTH
    from handlers.integrations.feature import WEBHOOKS
    from handlers.interactions.feature import INTERACTIONS, REFERRAL
    from handlers.orders.feature import ORDERS
    from handlers.sop.feature import SOP
    from handlers.staff.feature import STAFF

    return [REFERRAL, GROWTH, SOP, ORDERS, INTERACTIONS, STAFF, DEMO, WEBHOOKS, API, CONSOLE_FEATURE]


def main(argv: Sequence[str] | None = None) -> int:
    """``siyu-bot``: the kernel's command line with every feature's commands."""
    from bot.cli import main as run

    return run(argv, features())
