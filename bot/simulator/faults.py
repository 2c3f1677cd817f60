"""Fault injection for the simulated API: the platform's answer lost, or an error before acting.

Test-only in effect: nothing changes unless a fault is armed on ``state.faults``::

    state.faults.lose_answer("message/send", times=1, mode="reset")   # acted, then the connection drops
    state.faults.lose_answer("externalcontact/send_welcome_msg", mode="timeout", delay=12.0)
    state.faults.fail_before("externalcontact/mark_tag", times=2, errcode=45009)  # refused, not acted

* ``lose_answer``: the call is served in full (recorded in ``state.calls``, its effects applied: the
  welcome delivered, the message delivered, the tag set) and then the caller never gets the answer:
  ``reset`` closes the connection abruptly (the client sees a disconnect), ``timeout`` holds the answer
  for ``delay`` seconds (real time; longer than the client's timeout) and then answers into a connection
  nobody reads any more. This is what a caller cannot tell apart from "the call never arrived".
  (aiohttp's client re-sends an idempotent request — GET — once by itself when a connection drops
  before any answer, so a ``reset`` on a GET read is usually healed by the client; the bot's sends are POSTs.)
* ``fail_before``: the next ``times`` calls answer ``errcode`` without acting (same queue as
  :meth:`~bot.simulator.state.SimState.inject_error`).

Every lost answer is kept in :attr:`Faults.lost` (and marked on the :class:`RecordedCall`), so a test
can tell "the bot never called" from "the bot called, the platform acted, the answer was lost".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

LostMode = Literal["reset", "timeout"]
LOST_MODES: tuple[LostMode, ...] = ("reset", "timeout")
DEFAULT_TIMEOUT_DELAY = 15.0  # the bot's platform client gives up after 10 s (bot/platform/base.py)


@dataclass(frozen=True)
class LostAnswer:
    """One armed "answer lost" fault: how the answer is lost and (``timeout``) how long it is held."""

    mode: LostMode
    delay: float = 0.0


@dataclass
class Faults:
    """Armed faults per API name (the path after ``cgi-bin/``, as in ``state.calls_to``)."""

    lost_answers: dict[str, list[LostAnswer]] = field(default_factory=dict)
    lost: list[tuple[str, LostMode]] = field(default_factory=list)  # (api, mode) of each answer lost so far
    _inject: Callable[[str, int, str, int], None] | None = None

    def lose_answer(
        self, api: str, times: int = 1, mode: LostMode = "reset", delay: float = DEFAULT_TIMEOUT_DELAY
    ) -> None:
        """Serve the next ``times`` calls to ``api`` fully, then lose their answers (see module doc)."""
        if mode not in LOST_MODES:
            raise ValueError(f"mode must be one of {LOST_MODES}, got {mode!r}")
        if times < 1 or delay < 0:
            raise ValueError("times must be ≥ 1 and delay ≥ 0")
        self.lost_answers.setdefault(_name(api), []).extend([LostAnswer(mode, delay)] * times)

    def fail_before(self, api: str, times: int = 1, errcode: int = 45009, errmsg: str = "injected") -> None:
        """Answer the next ``times`` calls to ``api`` with ``errcode`` without acting (45009: rate limited)."""
        if self._inject is None:
            raise RuntimeError("Faults is not attached to a SimState")
        self._inject(_name(api), errcode, errmsg, times)

    def take_lost_answer(self, api: str) -> LostAnswer | None:
        """The fault for this call to ``api``, consumed (None: answer normally)."""
        queue = self.lost_answers.get(api)
        if not queue:
            return None
        fault = queue.pop(0)
        self.lost.append((api, fault.mode))
        return fault

    @property
    def armed(self) -> int:
        """Lost-answer faults not consumed yet."""
        return sum(len(q) for q in self.lost_answers.values())

    def clear(self) -> None:
        self.lost_answers.clear()


def _name(api: str) -> str:
    return api.lstrip("/").removeprefix("cgi-bin/")
