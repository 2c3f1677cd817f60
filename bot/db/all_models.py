"""Import every model module so ``Base.metadata`` knows all tables (alembic, tests)."""

from bot.db import models  # noqa: F401
