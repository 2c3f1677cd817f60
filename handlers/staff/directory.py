"""The staff directory the same-department rule reads: every follow user's departments from ``user/get``
([W:90196]), kept in ``staff_members`` so a member's department is still known after they leave (a
departed member is gone from the platform's directory). Refreshed daily by :data:`DIRECTORY` through the
outbox, and by ``siyu-bot staff directory``."""

from __future__ import annotations

from sqlalchemy import select

from bot.context import PRIORITY_BULK, Context
from bot.db.upsert import insert_ignore
from bot.dispatcher import PlatformResult, Router
from bot.periodic import Job
from handlers.staff.tables import StaffMember

router = Router("staff_directory")
DAILY = 86_400.0


async def refresh(ctx: Context) -> None:
    ctx.call_platform("wecom", "externalcontact/get_follow_user_list", {}, method="GET", key="staff:follow_users",
                      priority=PRIORITY_BULK, then="staff_follow_users")  # fmt: skip


@router.on_result("staff_follow_users")
async def read_members(result: PlatformResult, ctx: Context) -> None:
    users = result.response.get("follow_user")
    for userid in users if isinstance(users, list) else []:
        ctx.call_platform("wecom", "user/get", {}, method="GET", params={"userid": str(userid)},
                          key=f"staff:user:{userid}", priority=PRIORITY_BULK, then="staff_member")  # fmt: skip


@router.on_result("staff_member")
async def remember_member(result: PlatformResult, ctx: Context) -> None:
    await remember(ctx, result.response)


async def remember(ctx: Context, user: dict[str, object]) -> None:
    userid = user.get("userid")
    if not isinstance(userid, str) or not userid:
        return
    raw = user.get("department")
    ids = [d for d in raw if isinstance(d, int)] if isinstance(raw, list) else []
    values = {"userid": userid, "name": str(user.get("name") or "")[:128], "departments": {"ids": ids},
              "updated_at": ctx.now()}  # fmt: skip
    if not await insert_ignore(ctx.session, StaffMember, values, ["userid"]):
        row = await ctx.session.get(StaffMember, userid)
        if row is not None:
            row.name, row.departments, row.updated_at = str(values["name"]), {"ids": ids}, ctx.now()


async def departments(ctx: Context) -> dict[str, list[int]]:
    rows = await ctx.session.scalars(select(StaffMember))
    return {r.userid: [int(d) for d in r.departments.get("ids", [])] for r in rows.all()}


DIRECTORY = Job("staff_directory", DAILY, refresh)
