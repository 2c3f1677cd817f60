"""Structured logging with secret redaction.

Every record passes :class:`RedactSecrets`, which masks

- the configured secrets (``secret_values(settings)``: app/corp secrets, callback tokens, EncodingAESKeys,
  the session secret, the order-webhook secret, database and Redis passwords),
- the *live* values registered at run time with :func:`remember_secret` (every access token the token
  manager fetches or reads from the shared store, group-robot webhook keys),
- ``access_token=`` / ``secret=`` query values, SQL parameter dumps (``[parameters: …]``), PostgreSQL's
  ``DETAIL: Key (…)=(…)`` values, SQLAlchemy's DEBUG result-row dumps and aiosqlite's DEBUG call dumps

wherever they appear (message, arguments, extras, exception text), so a stray ``repr`` or exception
text cannot leak them. The engines are also built with ``hide_parameters=True`` (bot/db/engine.py):
the scrubbing here is the second line, not the only one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_ACCESS_TOKEN = re.compile(r"(access_token|corpsecret|secret)=([^&\s\"']+)", re.IGNORECASE)
_JSON_TOKEN = re.compile(r"""(?i)("(?:access_token|corpsecret|appsecret|secret)"\s*:\s*")[^"]*""")
# SQLAlchemy's StatementError text: "[parameters: (...)]" up to the end of its line.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
# PostgreSQL constraint violations: "DETAIL:  Key (external_userid)=(wm123) already exists."
_PG_KEY_DETAIL = re.compile(
    r"(Key \([^)]*\)=\()[^\n]*?(\) (?:already exists|is not present|is still referenced)|$)", re.MULTILINE
)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_MIN_SECRET = 4  # shorter values would mask ordinary words
_ROTATING_MAX = 256


class _LiveSecrets:
    """Values learnt at run time that no log line may show (thread-safe: aiosqlite logs from threads).

    Fixed values (robot webhook keys) are kept for the life of the process; rotating ones (access tokens,
    a new one every ~2 h) only the newest ``_ROTATING_MAX``: older tokens have expired anyway.
    """

    def __init__(self) -> None:
        self._fixed: set[str] = set()
        self._rotating: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._snapshot: tuple[str, ...] = ()

    def add(self, value: str, rotates: bool) -> None:
        if len(value) < _MIN_SECRET:
            return
        with self._lock:
            if value in self._fixed or (rotates and value in self._rotating):
                return
            if rotates:
                self._rotating[value] = None
                while len(self._rotating) > _ROTATING_MAX:
                    self._rotating.popitem(last=False)
            else:
                self._fixed.add(value)
            self._snapshot = tuple(sorted({*self._fixed, *self._rotating}, key=len, reverse=True))

    def values(self) -> tuple[str, ...]:
        return self._snapshot


_LIVE = _LiveSecrets()


def remember_secret(value: str, *, rotates: bool = False) -> None:
    """Mask ``value`` in every log line from now on. ``rotates``: one of a series that replace each other
    (access tokens), of which only the newest few hundred are kept."""
    _LIVE.add(value, rotates)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for values in (self._secrets, _LIVE.values()):
            for secret in values:
                if secret in text:
                    text = text.replace(secret, "***")
        text = _ACCESS_TOKEN.sub(r"\1=***", text)
        text = _JSON_TOKEN.sub(r"\1***", text)
        text = _SQL_PARAMETERS.sub("[parameters: hidden]", text)
        return _PG_KEY_DETAIL.sub(r"\1***\2", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("aiosqlite") and record.levelno <= logging.DEBUG:
            return False  # "executing functools.partial(<execute>, 'SQL', (params…))": a parameter dump
        if record.name.startswith("sqlalchemy.engine") and isinstance(record.msg, str):
            _hide_engine_values(record)
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not isinstance(value, int | float | bool | None):
                setattr(record, key, self.scrub(str(value)))  # the formatters print extras with str()
        return True


def _hide_engine_values(record: logging.LogRecord) -> None:
    """SQLAlchemy's own dumps: result rows (DEBUG) and, from an engine without ``hide_parameters``, the
    statement's parameters (INFO). Tokens and customer ids travel in both."""
    msg, args = str(record.msg), record.args
    if msg.endswith("Row %r"):
        record.msg, record.args = msg[:-2] + "[hidden]", None
    elif msg.endswith("[%s] %r") and isinstance(args, tuple) and len(args) == 2:
        record.msg, record.args = msg[:-2] + "[SQL parameters hidden]", args[:1]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str, fmt: str, secrets: Iterable[str], stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactSecrets(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one INFO line per job run otherwise
