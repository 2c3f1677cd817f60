"""The operators' console: ``/console/`` pages and the ``users`` command (docs/console.md)."""

from __future__ import annotations

from bot.feature import Feature
from handlers.console.commands import add_commands
from handlers.console.routes import add_console_routes

CONSOLE_FEATURE = Feature("console", routes=(add_console_routes,), commands=(add_commands,))
