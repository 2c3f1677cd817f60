"""The simulated corp a rehearsal, the demo and the tests start from: what the channels refer to."""

from __future__ import annotations

from bot.content import Content
from bot.simulator import SimState
from handlers.growth.content import channels_of


def seed_corp(state: SimState, content: Content) -> None:
    """Give the simulated corp the staff and customer groups the operator's content refers to,
    as a real corp already has them before codes are created."""
    for channel in channels_of(content).channels:
        way = channel.contact_way
        if way is not None:
            for userid in (*way.staff, *way.backup_staff, *(u for day in way.schedule or () for u in day)):
                if userid not in state.staff:
                    state.add_staff(userid)
        if channel.join_way is not None:
            for chat_id in channel.join_way.chat_ids:
                if chat_id not in state.groups:
                    owner = next(iter(state.staff), "groupowner")
                    state.add_group(owner, name=f"{channel.name}", chat_id=chat_id)
