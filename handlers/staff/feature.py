"""Staff changes: 离职继承 / 在职转接 with their results tracked, and 客户流失提醒 (docs in README, "Staff changes")."""

from __future__ import annotations

from bot.feature import Feature
from handlers.staff import alerts, directory, transfers
from handlers.staff.commands import add_commands
from handlers.staff.content import CONTENT

STAFF = Feature(
    "staff",
    content=CONTENT,
    routers=(transfers.router, alerts.router, directory.router),
    jobs=(transfers.POLL, alerts.DIGEST, directory.DIRECTORY),
    commands=(add_commands,),
)
