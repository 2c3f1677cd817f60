"""Signed, stateless H5 sessions and CSRF tokens (no server-side session store, so any replica serves them).

* Session cookie ``siyu_h5``: ``<customer_id>.<issued unix time>.<HMAC>``; valid ``SESSION_TTL``.
* CSRF token: ``HMAC(key, "csrf|" + cookie)`` — put in the page, sent back in the ``X-CSRF-Token``
  header; a cross-site page can neither read it nor set the header (double-submit with a keyed token).
* OAuth state cookie ``siyu_h5_oauth``: ``<state>.<next path, base64url>.<HMAC>``; the ``state`` sent
  to the authorize page must come back unchanged (no login CSRF), ``next`` is where to land after. The
  state itself is also stored server-side (:mod:`handlers.interactions.h5.states`): single use, expires after OAUTH_TTL.

The HMAC key is derived from ``server.session_secret``; changing the secret signs everyone out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

SESSION_COOKIE = "siyu_h5"
OAUTH_COOKIE = "siyu_h5_oauth"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = timedelta(days=7)
OAUTH_TTL = timedelta(minutes=10)  # an authorize round trip; the code itself lives 5 minutes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    customer_id: int
    cookie: str


class Signer:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"siyu-bot h5 session v1", hashlib.sha256).digest()

    def _mac(self, purpose: str, payload: str) -> str:
        return hmac.new(self._key, f"{purpose}|{payload}".encode(), hashlib.sha256).hexdigest()[:32]

    def session_cookie(self, customer_id: int, now: datetime) -> str:
        payload = f"{customer_id}.{int(now.timestamp())}"
        return f"{payload}.{self._mac('session', payload)}"

    def read_session(self, cookie: str | None, now: datetime) -> Session | None:
        """The session in ``cookie`` if it is ours and not expired."""
        parts = (cookie or "").split(".")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        if not hmac.compare_digest(parts[2], self._mac("session", f"{parts[0]}.{parts[1]}")):
            return None
        age = now.timestamp() - int(parts[1])
        if not -60 <= age <= SESSION_TTL.total_seconds():
            return None
        return Session(int(parts[0]), cookie or "")

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.cookie)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def oauth_cookie(self, state: str, next_path: str) -> str:
        """The cookie binding ``state`` (from :class:`~handlers.interactions.h5.states.OAuthStates`) to this browser."""
        payload = f"{state}.{_b64(next_path.encode())}"
        return f"{payload}.{self._mac('oauth', payload)}"

    def read_oauth(self, cookie: str | None, state: str | None) -> str | None:
        """The ``next`` path if ``state`` is the one this browser was sent away with."""
        parts = (cookie or "").split(".")
        if len(parts) != 3 or not state or not hmac.compare_digest(parts[0], state):
            return None
        if not hmac.compare_digest(parts[2], self._mac("oauth", f"{parts[0]}.{parts[1]}")):
            return None
        try:
            return _unb64(parts[1]).decode()
        except (binascii.Error, ValueError):
            return None
