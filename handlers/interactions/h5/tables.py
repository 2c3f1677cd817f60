"""Tables of the H5 pages: the OAuth ``state`` values handed out and not yet used."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base


class H5OAuthState(Base):
    """One ``state`` sent to WeChat's authorize page: deleted when it comes back (single use), worthless
    after ``expires_at``. In the database, so every replica can consume what any replica issued."""

    __tablename__ = "h5_oauth_states"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_h5_oauth_states_expires_at", "expires_at"),)
