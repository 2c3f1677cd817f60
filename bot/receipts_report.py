"""``siyu-bot events``: recent receipts with their status, and the platform calls not delivered."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.config import Settings
from bot.db.engine import make_engine
from bot.db.models import OutboxCall, Receipt

# Outbox outcomes an operator must see: not delivered (failed, expired) and unknown (uncertain).
UNDELIVERED = ("failed", "expired", "uncertain")


async def print_recent_events(settings: Settings, limit: int, status: str | None, kind: str | None) -> int:
    engine = make_engine(settings.database)
    try:
        query = select(Receipt).order_by(Receipt.id.desc()).limit(limit)
        if status:
            query = query.where(Receipt.status == status)
        if kind:
            query = query.where(Receipt.kind == kind)
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            calls = (
                await conn.execute(
                    select(OutboxCall.api, OutboxCall.state, func.count())
                    .where(OutboxCall.state.in_(UNDELIVERED))
                    .group_by(OutboxCall.api, OutboxCall.state)
                    .order_by(OutboxCall.state, OutboxCall.api)
                )
            ).all()
    finally:
        await engine.dispose()
    tz = settings.tz
    print(
        f"{'id':>7}  {'received (' + settings.timezone + ')':<27}{'platform':<9}{'kind':<24}{'status':<8}tries  error"
    )
    for r in rows:
        when = r.received_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{r.id:>7}  {when:<27}{r.platform:<9}{r.kind:<24}{r.status:<8}{r.attempts:>5}  {r.error or ''}")
    if not rows:
        print("(no events yet)")
    summary = ", ".join(f"{api} {state} {n}" for api, state, n in calls)
    print("platform calls not delivered (failed, expired) or unknown (uncertain: answer lost, not re-sent): "
          + (summary or "none"))  # fmt: skip
    return 0
