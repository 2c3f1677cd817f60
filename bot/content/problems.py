"""Problems found in operator content, always as (file, key, reason), and the error that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in one place: ``content/channels.toml``, ``channels[2].state``, ``longer than …``."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.key}: {self.reason}" if self.key else f"{self.file}: {self.reason}"


class ContentError(ValueError):
    """Content did not load. Carries every problem, not just the first, so operators fix them in one go."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"{len(problems)} content problem(s):\n{lines}")


@dataclass
class Reporter:
    """Collects problems while files are read, so one run reports all of them."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, file: str, key: str, reason: str) -> None:
        self.problems.append(Problem(file, key, reason))

    def __bool__(self) -> bool:
        return bool(self.problems)
