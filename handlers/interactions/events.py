"""What the interactions tell the other features (``ctx.emit``), inside the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bot.events import DomainEvent


@dataclass(frozen=True, slots=True)
class CheckinCompleted(DomainEvent):
    name: ClassVar[str] = "checkin.completed"
    customer_id: int
    local_day: str
    streak: int
    points: int


@dataclass(frozen=True, slots=True)
class LotteryDrawn(DomainEvent):
    """One draw settled (won or not); ``prize`` is the prize id when won."""

    name: ClassVar[str] = "lottery.drawn"
    customer_id: int
    campaign_id: str
    seq: int
    won: bool
    prize: str | None


@dataclass(frozen=True, slots=True)
class ReferralRewarded(DomainEvent):
    """A held referral was released: the inviter (and the invitee, when the rules give them one) rewarded."""

    name: ClassVar[str] = "referral.rewarded"
    referral_id: int
    inviter_id: int
    invitee_id: int
