"""Import every model module so ``Base.metadata`` knows all tables (alembic, tests)."""

from bot.db import growth, models, sop  # noqa: F401
