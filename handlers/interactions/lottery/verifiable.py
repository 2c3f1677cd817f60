"""The verifiable part of a lottery draw: pure functions anyone can re-run from the published values.

Commit, then reveal. Before a campaign opens its ``seed_sha256 = SHA-256(seed)`` is published (the seed
is the 64-character hex string from ``secrets.token_hex(32)``, hashed as ASCII); after it ends the seed
itself is revealed (``siyu-bot lottery verify``). Every draw's randomness is

    roll = HMAC-SHA256(key=seed, msg=f"{campaign_id}:{seq}:{ticket_id}")   (lower-case hex)

so the operator cannot choose rolls after committing to the seed, and anyone holding the seed and the
draw list can recompute each roll. The prize is ``int(roll, 16) mod total_weight`` walked over the
prizes in content order (weight 0 never wins; the modulo bias of a 256-bit roll is below 2^-200).

Stock makes the outcome depend on order: a chosen prize whose stock is gone is "no prize". Draws take
``seq`` under the campaign's row lock, so ``seq`` order is the order in which stock was taken, and
:func:`replay` re-runs the draws in that order against the initial stock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


def new_seed() -> str:
    """A fresh campaign seed (production: the OS CSPRNG through :mod:`secrets`)."""
    return secrets.token_hex(32)


def seed_hash(seed: str) -> str:
    """What is published before the campaign opens."""
    return hashlib.sha256(seed.encode("ascii")).hexdigest()


def roll_for(seed: str, campaign_id: str, seq: int, ticket_id: int) -> str:
    message = f"{campaign_id}:{seq}:{ticket_id}".encode()
    return hmac.new(seed.encode("ascii"), message, hashlib.sha256).hexdigest()


def choose(roll: str, weights: Sequence[tuple[str, int]]) -> str:
    """The prize id that ``roll`` selects among ``(prize_id, weight)`` in content order."""
    total = sum(w for _, w in weights if w > 0)
    if total <= 0:
        raise ValueError("no prize has a positive weight")
    ticket = int(roll, 16) % total
    for prize_id, weight in weights:
        if weight <= 0:
            continue
        if ticket < weight:
            return prize_id
        ticket -= weight
    raise AssertionError("unreachable: ticket < total")


@dataclass(frozen=True, slots=True)
class DrawRecord:
    """One stored draw as the verifier reads it."""

    seq: int
    ticket_id: int
    roll: str
    prize_id: str | None  # None: no prize (chosen "none", or its stock was gone)


@dataclass(frozen=True, slots=True)
class PrizeTable:
    """The published prize table: weights in content order, which ids mean "no prize", initial stock."""

    weights: tuple[tuple[str, int], ...]
    no_prize: frozenset[str]
    initial: Mapping[str, int]


@dataclass
class Replay:
    mismatches: list[str] = field(default_factory=list)
    winners: dict[str, int] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def expected_prize(roll: str, table: PrizeTable, stock: dict[str, int]) -> str | None:
    """The outcome of one draw given the stock left before it (``stock`` is updated)."""
    chosen = choose(roll, table.weights)
    if chosen in table.no_prize or stock.get(chosen, 0) <= 0:
        return None
    stock[chosen] -= 1
    return chosen


def replay(seed: str, campaign_id: str, draws: Sequence[DrawRecord], table: PrizeTable) -> Replay:
    """Recompute every roll and outcome in ``seq`` order; list each disagreement with what was stored."""
    out = Replay(remaining=dict(table.initial))
    previous = 0
    for draw in sorted(draws, key=lambda d: d.seq):
        if draw.seq != previous + 1:  # a deleted draw would change every later outcome's stock
            out.mismatches.append(f"seq {previous + 1}..{draw.seq - 1}: missing")
        previous = draw.seq
        roll = roll_for(seed, campaign_id, draw.seq, draw.ticket_id)
        if roll != draw.roll:
            out.mismatches.append(f"seq {draw.seq}: stored roll {draw.roll} != recomputed {roll}")
        prize = expected_prize(roll, table, out.remaining)
        if prize != draw.prize_id:
            out.mismatches.append(f"seq {draw.seq}: stored prize {draw.prize_id} != recomputed {prize}")
        if prize is not None:
            out.winners[prize] = out.winners.get(prize, 0) + 1
    return out
