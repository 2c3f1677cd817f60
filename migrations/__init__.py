"""Alembic migrations (run with ``siyu-bot migrate``)."""
