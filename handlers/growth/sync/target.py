"""Where a plan is applied (the clients and the record store) and what came of it."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.platform import CredentialsRejected, JsonObject, MpClient, PlatformError, TokenUnavailable, WeComClient
from handlers.growth.sync.model import Action, Desired, Record
from handlers.growth.sync.records import RecordStore


class UnexpectedResponse(Exception):
    """The platform answered errcode 0 without a field its documentation promises."""

    def __init__(self, api: str, detail: str) -> None:
        super().__init__(f"{api}: {detail}")


class NotConfigured(Exception):
    """A write is needed on a platform whose credentials are not configured."""


STOPPING = (CredentialsRejected, TokenUnavailable)
"""Failures that would repeat for every object: the run stops instead of reporting each one."""


@dataclass(frozen=True)
class SyncTarget:
    """``media_root``: the content directory that attachment files (``media`` keys) are read from."""

    store: RecordStore
    wecom: WeComClient | None = None
    mp: MpClient | None = None
    media_root: Path | None = None

    def wecom_client(self) -> WeComClient:
        if self.wecom is None:
            raise NotConfigured("WeCom is not configured ([wecom] corp_id and secret)")
        return self.wecom

    def mp_client(self) -> MpClient:
        if self.mp is None:
            raise NotConfigured("the Official Account is not configured ([official_account] app_id and app_secret)")
        return self.mp


@dataclass
class SyncResult:
    """Objects applied and objects that failed (with the platform's errcode and errmsg)."""

    applied: list[Action] = field(default_factory=list)
    errors: list[tuple[Action, str]] = field(default_factory=list)

    async def run(self, actions: Sequence[Action], step: Awaitable[None]) -> None:
        """Await ``step`` for ``actions``; a failure is recorded for them and the sync goes on."""
        try:
            await step
        except STOPPING:
            raise
        except (PlatformError, UnexpectedResponse, NotConfigured, ValueError) as exc:
            self.errors.extend((a, str(exc)) for a in actions)
            return
        self.applied.extend(actions)

    def lines(self) -> list[str]:
        return [f"error      {a.kind:<15} {a.key}: {reason}" for a, reason in self.errors]


def text_field(api: str, body: JsonObject, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise UnexpectedResponse(api, f"no {name} in the answer")
    return value


def object_field(api: str, body: JsonObject, name: str) -> JsonObject:
    value = body.get(name)
    if not isinstance(value, dict):
        raise UnexpectedResponse(api, f"no {name} in the answer")
    out: JsonObject = value
    return out


def wanted(action: Action) -> Desired:
    if action.desired is None:
        raise ValueError(f"{action.kind} {action.key}: nothing wanted")
    return action.desired


def record_of(desired: Desired, remote_id: str | None, **extra: Any) -> Record:
    """The row to save for ``desired``: its fields (to diff next time), fingerprint and remote extras."""
    return Record(desired.kind, desired.key, remote_id, desired.fingerprint, {"fields": dict(desired.fields), **extra})
