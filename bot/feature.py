"""A feature: everything one business capability adds to the kernel, declared in one place.

The kernel (transport, inbox, dispatcher, outbox, platform clients, scheduler, config, content machinery,
database) knows no feature. The app is composed from a list of :class:`Feature` values
(``handlers.FEATURES``); each names its routers (event and domain-event handlers, result handlers,
reply planners), periodic jobs, background workers, HTTP routes, CLI commands, extra platform callers,
outbox reconcilers, receipt sources and content file kinds. docs/architecture.md shows how to add one.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from bot.content.check import ContentReport
from bot.content.kinds import BASE_REGISTRY
from bot.content.registry import Registry
from bot.dispatcher import Router
from bot.inbox import SourceParser
from bot.periodic import Job
from bot.services import Services

if TYPE_CHECKING:
    from bot.outbox import PlatformCaller, Reconciler

# ``async def worker(services): start; yield; stop`` — set up after the kernel, torn down before it.
Worker = Callable[[Services], AsyncIterator[None]]
Routes = Callable[[web.Application, Services], None]
Commands = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
Clients = Callable[[Services], "Mapping[str, PlatformCaller]"]
Reconcilers = Callable[[Services], "Mapping[str, Reconciler]"]
# A stored receipt of a platform other than WeCom/OA (the shop's orders) back into its typed event.
Source = SourceParser


@dataclass(frozen=True)
class Feature:
    name: str
    routers: tuple[Router, ...] = ()
    jobs: tuple[Job, ...] = ()
    workers: tuple[Worker, ...] = ()
    routes: tuple[Routes, ...] = ()
    commands: tuple[Commands, ...] = ()
    clients: tuple[Clients, ...] = ()
    reconcilers: tuple[Reconcilers, ...] = ()
    sources: Mapping[str, Source] = field(default_factory=dict)
    # Content file kinds and cross-checks (``content/drips.toml`` …), merged onto the kernel's
    # channels, messages and tags; and the lines ``content check`` prints for them.
    content: Registry = field(default_factory=Registry)
    content_reports: tuple[ContentReport, ...] = ()


def routers_of(features: tuple[Feature, ...] | list[Feature]) -> list[Router]:
    """Every router, in feature order: the order their handlers run for the same event."""
    return [r for f in features for r in f.routers]


def content_registry_of(features: tuple[Feature, ...] | list[Feature]) -> Registry:
    """The kernel's content kinds with every feature's: what ``content check`` and the server load."""
    registry = BASE_REGISTRY
    for f in features:
        registry = registry.merged(f.content)
    return registry


def sources_of(features: tuple[Feature, ...] | list[Feature]) -> dict[str, Source]:
    found: dict[str, Source] = {}
    for f in features:
        for platform, parse in f.sources.items():
            if platform in found:
                raise ValueError(f"receipt source {platform!r} is declared by two features")
            found[platform] = parse
    return found
