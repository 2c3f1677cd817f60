"""Import every model module so ``Base.metadata`` knows all tables (alembic, tests)."""

from bot.db import growth, interactions, models, sop  # noqa: F401
