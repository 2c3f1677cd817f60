"""What the running app owns, typed: ``ctx.services`` in handlers, ``app[SERVICES]`` in the web layer.

The kernel's resources (engine, sessions, outbox, dispatcher …) are created by the app's start-up in one
agreed order (bot/app.py) and torn down in reverse; reading one before it exists raises
:class:`NotStarted` instead of handing out ``None``. What a feature owns (its drip worker, its batcher)
lives in :attr:`Services.parts` under a typed :class:`Part` key, so the kernel never names a feature.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.alerts import FailureAlerts
from bot.clock import Clock
from bot.config import Settings
from bot.content import Content
from bot.content_reload import ContentReloader
from bot.dispatcher import Dispatcher
from bot.inbox import ReceiptWriter, Sweeper
from bot.instances import Instances
from bot.metrics import Metrics
from bot.outbox import OutboxWorker, PlatformCaller
from bot.scheduler import Scheduler

if TYPE_CHECKING:
    from bot.feature import Feature

T = TypeVar("T")


class NotStarted(AttributeError):
    """A resource was read before the app's start-up created it (or after shut-down). An AttributeError,
    so ``getattr(services, "outbox", None)`` reads as "not there"."""


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


class Part(Generic[T]):
    """A typed key for something a feature keeps in :attr:`Services.parts` (like ``web.AppKey``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<Part {self.name}>"


class Parts:
    """Feature-owned objects of the running app, each under its :class:`Part` key."""

    def __init__(self) -> None:
        self._items: dict[Part[Any], Any] = {}

    def __getitem__(self, key: Part[T]) -> T:
        try:
            value: T = self._items[key]
        except KeyError:
            raise NotStarted(f"{key.name} is not running") from None
        return value

    def get(self, key: Part[T]) -> T | None:
        found: T | None = self._items.get(key)
        return found

    def __setitem__(self, key: Part[T], value: T) -> None:
        self._items[key] = value

    def setdefault(self, key: Part[T], value: T) -> T:
        found: T = self._items.setdefault(key, value)
        return found

    def pop(self, key: Part[Any]) -> None:
        self._items.pop(key, None)


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
        features: Iterable[Feature] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.content = content  # swapped whole by the reloader: never half-applied
        self.features: tuple[Feature, ...] = tuple(features)
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

    def __repr__(self) -> str:  # no settings (secrets) in a repr
        return f"<Services features={[f.name for f in self.features]}>"
