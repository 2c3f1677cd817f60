"""Who takes over a departed member's customers: a named successor, the members of the same department,
or a round-robin over a list. Pure functions: the command reads the directory, these decide."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class TransferInputError(ValueError):
    """Bad input for a transfer command: said in one line, nothing changed."""


@dataclass(frozen=True)
class Rule:
    kind: str  # to | same-department | round-robin
    members: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "to":
            return f"to:{self.members[0]}"
        if self.kind == "round-robin":
            return "round-robin:" + ",".join(self.members)
        return self.kind


def parse_rule(to: str | None, rule: str | None) -> Rule:
    """``--to V`` or ``--rule same-department|round-robin:V1,V2`` (exactly one)."""
    if (to is None) == (rule is None):
        raise TransferInputError("give exactly one of --to USERID and --rule same-department|round-robin:V1,V2")
    if to is not None:
        if not to.strip():
            raise TransferInputError("--to needs a userid")
        return Rule("to", (to.strip(),))
    assert rule is not None
    if rule == "same-department":
        return Rule("same-department")
    name, _, listed = rule.partition(":")
    members = tuple(dict.fromkeys(m.strip() for m in listed.split(",") if m.strip()))
    if name != "round-robin" or not members:
        raise TransferInputError(f"unknown rule {rule!r} (use same-department or round-robin:V1,V2)")
    return Rule("round-robin", members)


def candidates(
    rule: Rule, departed: str, active: Sequence[str], departments: Mapping[str, Sequence[int]]
) -> tuple[str, ...]:
    """The successors ``rule`` names, each an active member (never the departed one)."""
    if rule.kind == "same-department":
        own = set(departments.get(departed, ()))
        if not own:
            raise TransferInputError(
                f"the department of {departed} is not known (run `siyu-bot staff directory` while members are "
                "employed, or name a successor with --to)"
            )
        found = tuple(u for u in sorted(active) if u != departed and own & set(departments.get(u, ())))
        if not found:
            raise TransferInputError(f"no active member shares a department with {departed}")
        return found
    unknown = [m for m in rule.members if m not in active]
    if unknown:
        raise TransferInputError(f"unknown or departed staff member(s): {', '.join(unknown)}")
    if departed in rule.members:
        raise TransferInputError(f"{departed} cannot take over their own customers")
    return rule.members


def assign(items: Sequence[str], successors: Sequence[str]) -> dict[str, str]:
    """Spread ``items`` over ``successors`` in turn (one successor: all to them)."""
    return {item: successors[i % len(successors)] for i, item in enumerate(items)}
