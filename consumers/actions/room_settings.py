"""`room.update`: the owner changes the room's title, prompt, model, privacy or reply mode."""

from __future__ import annotations

from channels.db import database_sync_to_async

from chatsite.conversation import events as room_events
from chatsite.llm.registry import get_provider
from chatsite.rooms.access import can_manage
from chatsite.rooms.models import Room
from chatsite.rooms.serializers import room_data

from .. import protocol
from ..broadcast import broadcast
from ..protocol import FrameError, UpdateRoom
from ..protocol.frames import RoomEventData
from .context import ActionContext
from .members import access_changed
from .room_events import event_data


async def update_room(ctx: ActionContext, frame: UpdateRoom) -> None:
    """Apply the owner's settings and tell the room."""
    if not can_manage(ctx.user, ctx.room):
        raise FrameError("forbidden", "Only the room's owner can change its settings.")
    if frame.model is not None:
        check_model(frame.model)
    updated, events = await _apply(ctx, frame)
    ctx.room = updated
    await broadcast(updated.pk, protocol.room_updated(room_data(updated, get_provider()), events))
    if frame.private:  # made (or kept) private: non-members' sockets close with 4403
        await access_changed(updated)


@database_sync_to_async
def _apply(ctx: ActionContext, frame: UpdateRoom) -> tuple[Room, list[RoomEventData]]:
    """The update and its events (one per field that changed), in one database call."""
    updated, events = room_events.update_settings(
        ctx.room,
        ctx.user,
        title=frame.title,
        system_prompt=frame.system_prompt,
        model=frame.model,
        private=frame.private,
        reply_mode=frame.reply_mode,
    )
    return updated, [event_data(e) for e in events]


def check_model(model: str) -> None:
    """Refuse a model the owner may not pick: not offered, or deprecated by Anthropic."""
    provider = get_provider()
    if provider.name != "anthropic":
        raise FrameError("invalid_message", f"The {provider.name} provider has one fixed model.")
    from chatsite.llm.anthropic_provider import deprecation_date

    retiring = deprecation_date(model)
    if retiring is not None:
        raise FrameError(
            "invalid_message", f"{model} is deprecated (end of life {retiring}); pick another."
        )
    if model not in provider.selectable_models():
        allowed = ", ".join(provider.selectable_models())
        raise FrameError("invalid_message", f"{model} is not offered here. Pick one of: {allowed}.")
