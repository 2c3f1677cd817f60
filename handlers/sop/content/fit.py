"""What each SOP delivery can carry and whom it reaches (limits themselves live in bot/content/fit.py)."""

from __future__ import annotations

from bot.content.fit import MP_CUSTOM_TYPES, MP_WINDOW_MESSAGES, robot_problem, send_count, types_problem
from bot.content.model import Message, Platform
from handlers.sop.content.model import Delivery

# Where the customer must be for a delivery to reach them.
DELIVERY_PLATFORMS: dict[Delivery, frozenset[Platform]] = {
    Delivery.MP_CUSTOM: frozenset({Platform.MP}),
    Delivery.WECOM_TASK_SINGLE: frozenset({Platform.WECOM_FRIEND}),
    Delivery.APP_TO_OWNER: frozenset({Platform.WECOM_FRIEND, Platform.WECOM_GROUP}),
}


def delivery_problem(message: Message, delivery: Delivery, *, group: bool) -> str | None:
    """Why ``message`` cannot go out through ``delivery`` (``group``: to groups, no customer), or None."""
    if group and message.variables:
        names = ", ".join("{" + n + "}" for n in sorted(message.variables))
        return f"a group post has no single customer: {names} cannot be filled"
    if delivery is Delivery.GROUP_ROBOT:
        return robot_problem(message)
    if delivery is Delivery.MP_CUSTOM:
        reason = types_problem(message, MP_CUSTOM_TYPES, "as an Official Account customer-service message")
        if reason is None and send_count(message) > MP_WINDOW_MESSAGES:
            reason = f"{send_count(message)} messages (text + attachments); a 48 h window allows {MP_WINDOW_MESSAGES}"
        return reason
    return None
