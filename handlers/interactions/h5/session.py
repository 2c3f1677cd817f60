"""Signed, stateless H5 sessions and CSRF tokens (no server-side session store, so any replica serves them).

Signing is itsdangerous (HMAC-SHA256, a key derived per purpose from ``server.session_secret``, constant-time
checks); changing the secret signs everyone out.

* Session cookie ``siyu_h5``: ``<customer_id>.<issued time>.<signature>`` (a ``TimestampSigner`` on the
  injected clock); valid ``SESSION_TTL``, and up to a minute "from the future" (another replica's clock).
* CSRF token: the signature of the session cookie under its own purpose — put in the page, sent back in the
  ``X-CSRF-Token`` header; a cross-site page can neither read it nor set the header (double-submit with a
  keyed token).
* OAuth state cookie ``siyu_h5_oauth``: the signed pair ``[state, next path]``; the ``state`` sent to the
  authorize page must come back unchanged (no login CSRF), ``next`` is where to land after. The state itself
  is also stored server-side (:mod:`handlers.interactions.h5.states`): single use, expires after OAUTH_TTL.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from itsdangerous import BadData, TimestampSigner, URLSafeSerializer
from itsdangerous import Signer as ItsSigner

SESSION_COOKIE = "siyu_h5"
OAUTH_COOKIE = "siyu_h5_oauth"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = timedelta(days=7)
OAUTH_TTL = timedelta(minutes=10)  # an authorize round trip; the code itself lives 5 minutes
CLOCK_SKEW = timedelta(minutes=1)  # a session issued by a replica whose clock runs this much ahead is fine


class _Signing(TypedDict):
    key_derivation: str
    digest_method: Any


_SIGNING: _Signing = {"key_derivation": "hmac", "digest_method": hashlib.sha256}  # HMAC-SHA256 throughout


class _SignerAt(TimestampSigner):
    """A ``TimestampSigner`` reading the injected clock (``now``) instead of the wall clock."""

    def __init__(self, secret: str, purpose: str, now: datetime) -> None:
        super().__init__(secret, salt=f"siyu-bot h5 {purpose}", **_SIGNING)
        self._now = int(now.timestamp())

    def get_timestamp(self) -> int:
        return self._now


@dataclass(frozen=True, slots=True)
class Session:
    customer_id: int
    cookie: str


class Signer:
    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._csrf = ItsSigner(secret, salt="siyu-bot h5 csrf", **_SIGNING)
        self._oauth = URLSafeSerializer(secret, salt="siyu-bot h5 oauth", signer_kwargs=dict(_SIGNING))

    def session_cookie(self, customer_id: int, now: datetime) -> str:
        return _SignerAt(self._secret, "session", now).sign(str(customer_id)).decode()

    def read_session(self, cookie: str | None, now: datetime) -> Session | None:
        """The session in ``cookie`` if it is ours, not expired, and issued at most CLOCK_SKEW ahead of ``now``."""
        # itsdangerous refuses ages below 0 and above max_age: read at now + skew, allow TTL + skew.
        signer = _SignerAt(self._secret, "session", now + CLOCK_SKEW)
        try:
            value = signer.unsign(cookie or "", max_age=int((SESSION_TTL + CLOCK_SKEW).total_seconds()))
        except BadData:
            return None
        return Session(int(value), cookie or "") if value.isdigit() else None

    def csrf_token(self, session: Session) -> str:
        return self._csrf.get_signature(session.cookie).decode()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and self._csrf.verify_signature(session.cookie, str(token))

    def oauth_cookie(self, state: str, next_path: str) -> str:
        """The cookie binding ``state`` (from :class:`~handlers.interactions.h5.states.OAuthStates`) to this browser."""
        return self._oauth.dumps([state, next_path])

    def read_oauth(self, cookie: str | None, state: str | None) -> str | None:
        """The ``next`` path if ``state`` is the one this browser was sent away with."""
        try:
            signed = self._oauth.loads(cookie or "")
        except BadData:
            return None
        match signed:
            case [str(bound), str(next_path)] if state and hmac.compare_digest(bound.encode(), state.encode()):
                return next_path
        return None
