"""Import every model module so ``Base.metadata`` knows all tables (alembic, tests)."""

from bot.db import growth, h5, interactions, models, sop  # noqa: F401
