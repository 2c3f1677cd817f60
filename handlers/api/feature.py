"""The admin API: ``/api/v1/`` routes and the ``api-keys`` command (docs/api.md)."""

from __future__ import annotations

from bot.feature import Feature
from handlers.api.commands import add_commands
from handlers.api.imports import import_runs
from handlers.api.routes import add_api_routes

API = Feature("api", routes=(add_api_routes,), commands=(add_commands,), workers=(import_runs,))
