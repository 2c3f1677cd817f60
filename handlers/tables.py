"""Import every feature's table module so ``Base.metadata`` knows all tables (alembic, tests)."""

# ruff: noqa: F401
import bot.db.models  # the kernel's own tables
import handlers.api.tables
import handlers.console.tables
import handlers.growth.reconcile_tables
import handlers.growth.tables
import handlers.integrations.tables
import handlers.interactions.h5.tables
import handlers.interactions.tables
import handlers.orders.tables
import handlers.sop.tables
import handlers.staff.tables
