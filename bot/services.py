"""What the running app owns, typed: ``ctx.services`` in handlers, ``app[SERVICES]`` in the web layer.

The kernel's resources (engine, sessions, outbox, dispatcher …) are created by the app's start-up in one
agreed order (bot/app.py) and torn down in reverse; reading one before it exists raises
:class:`NotStarted` instead of handing out ``None``. What a feature owns (its drip worker, its batcher)
lives in :attr:`Services.parts` under a typed :class:`~bot.parts.Part` key, so the kernel never names a
feature. Code inside a transaction sees it through the narrower :class:`bot.context.Runtime`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Generic, TypeVar, overload

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.alerts import FailureAlerts
from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.content_reload import ContentReloader
from bot.dispatcher import Dispatcher, Handler
from bot.events import DomainEvent
from bot.inbox import ReceiptWriter, Sweeper
from bot.instances import Instances
from bot.metrics import Metrics
from bot.outbox import OutboxWorker, PlatformCaller
from bot.parts import NotStarted, Parts
from bot.scheduler import Scheduler

T = TypeVar("T")


class _Resource(Generic[T]):
    """An attribute that exists once start-up has set it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name, self._slot = name, f"_{name}"

    @overload
    def __get__(self, obj: None, owner: type) -> _Resource[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> T | _Resource[T]:
        if obj is None:
            return self
        value: T | None = obj.__dict__.get(self._slot)
        if value is None:
            raise NotStarted(f"{self._name} is not running (the app has not started, or has stopped)")
        return value

    def __set__(self, obj: object, value: T) -> None:
        obj.__dict__[self._slot] = value


class Services:
    """Everything the running app owns."""

    engine = _Resource[AsyncEngine]()
    sessions = _Resource[async_sessionmaker[AsyncSession]]()
    instances = _Resource[Instances]()
    http = _Resource[aiohttp.ClientSession]()
    outbox = _Resource[OutboxWorker]()
    alerts = _Resource[FailureAlerts]()
    dispatcher = _Resource[Dispatcher]()
    writer = _Resource[ReceiptWriter]()
    sweeper = _Resource[Sweeper]()
    scheduler = _Resource[Scheduler]()
    reloader = _Resource[ContentReloader]()

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        rng: random.Random,
        content: Content,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.content = content  # swapped whole by the reloader: never half-applied
        self.metrics = metrics or Metrics()
        self.clients: dict[str, PlatformCaller] = {}
        self.parts = Parts()
        # Poll loops to run at once rather than at their next tick (the simulated clock jumped).
        self.wake_hooks: list[Callable[[], None]] = []

    def wake(self) -> None:
        for hook in self.wake_hooks:
            hook()

    def running(self, name: str) -> bool:
        """Whether the resource ``name`` (``"outbox"``, ``"sessions"`` …) exists now."""
        return self.__dict__.get(f"_{name}") is not None

    def stopped(self, name: str) -> None:
        """Start-up's teardown: ``name`` is gone (reading it raises :class:`NotStarted` again)."""
        self.__dict__.pop(f"_{name}", None)

    def notify_outbox(self, calls: list[tuple[int, int]]) -> None:
        """Platform calls committed outside the dispatcher: send them now, not at the next poll."""
        if calls and self.running("outbox"):
            self.outbox.notify(calls)

    def listens_to(self, event_type: type[DomainEvent]) -> bool:
        return self.running("dispatcher") and self.dispatcher.listens_to(event_type)

    def reactions(self, event: DomainEvent) -> list[Handler]:
        """The handlers of every feature registered for ``event`` (``Context.emit``)."""
        return self.dispatcher.handlers_for(event) if self.running("dispatcher") else []

    def __repr__(self) -> str:  # no settings (secrets) in a repr
        return f"<Services {sorted(k[1:] for k, v in self.__dict__.items() if k.startswith('_') and v)}>"
