"""The kernel's checks across files: messages' variables against ``[fallbacks]``."""

from __future__ import annotations

from bot.content.messages import FALLBACKS, MESSAGES
from bot.content.model import VARIABLES
from bot.content.problems import Reporter
from bot.content.registry import Draft


def check_fallbacks(draft: Draft, report: Reporter) -> None:
    """Variables that need the profile must have a fallback: the welcome goes out before the profile."""
    found = draft.get(FALLBACKS)
    if not draft.complete(FALLBACKS):
        return
    fallbacks = found[0].value if found else {}
    for located in draft.get(MESSAGES):
        missing = sorted(
            name for name in located.value.variables if VARIABLES[name].needs_profile and name not in fallbacks
        )
        if missing:
            names = ", ".join("{" + n + "}" for n in missing)
            report.add(
                located.file,
                located.key,
                f'uses {names} but [fallbacks] has no text for it (e.g. {missing[0]} = "...")',
            )


ALL_CHECKS = (check_fallbacks,)
