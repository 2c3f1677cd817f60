"""Typed places for what a feature keeps in the running app (its worker, its batcher): :class:`Parts`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")


class NotStarted(AttributeError):
    """A resource was read before the app's start-up created it (or after shut-down). An AttributeError,
    so ``getattr(services, "outbox", None)`` reads as "not there"."""


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
