"""OAuth ``state`` values kept server-side: issued once, consumed once, worthless after :data:`OAUTH_TTL`.

The signed ``siyu_h5_oauth`` cookie binds a state to the browser it was issued to (no login CSRF); this
store makes it single-use and time-limited whatever the cookie says: a captured ``state`` + cookie pair
cannot be replayed with another ``code``, and a state older than ten minutes is refused even if a browser
kept the cookie. Consuming is one conditional ``DELETE … RETURNING``, so two replicas (or two tabs) racing
with the same state cannot both win. Expired rows are purged as new ones are issued.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Table, delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from handlers.interactions.h5.session import OAUTH_TTL
from handlers.interactions.h5.tables import H5OAuthState

_TABLE: Table = H5OAuthState.__table__  # type: ignore[assignment]


class OAuthStates:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def issue(self) -> str:
        """A new state (``[0-9a-f]{32}``: WeChat allows ``[a-zA-Z0-9]`` ≤ 128 bytes), valid for OAUTH_TTL."""
        state = secrets.token_hex(16)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await conn.execute(delete(_TABLE).where(_TABLE.c.expires_at <= now))
            await conn.execute(insert(_TABLE).values(state=state, expires_at=now + OAUTH_TTL))
        return state

    async def consume(self, state: str) -> bool:
        """True exactly once for a state issued here and not expired; False for anything else."""
        if not state or len(state) > 64:
            return False
        async with self._engine.begin() as conn:
            gone = await conn.execute(
                delete(_TABLE)
                .where(_TABLE.c.state == state, _TABLE.c.expires_at > self._clock.now())
                .returning(_TABLE.c.state)
            )
            return gone.first() is not None
