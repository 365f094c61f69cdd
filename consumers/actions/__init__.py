"""What a client frame does: one handler per frame type, called by the consumer.

Handlers are plain async functions of (context, frame): testable without a socket. Each lives
in the module of its concern; this table is the only place that maps frames to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .. import protocol
from .context import ActionContext
from .conversation import regenerate, typing
from .members import change_member, create_invite
from .messages import send_message, stop_generation, sync
from .reactions import toggle_reaction
from .room_settings import update_room

Handler = Callable[[ActionContext, Any], Awaitable[None]]

# Frame class → handler. Modules of later features register here (members, reactions, …).
HANDLERS: dict[type, Handler] = {
    protocol.SendMessage: send_message,
    protocol.StopGeneration: stop_generation,
    protocol.Sync: sync,
    protocol.UpdateRoom: update_room,
    protocol.MemberChange: change_member,
    protocol.CreateInvite: create_invite,
    protocol.Regenerate: regenerate,
    protocol.ToggleReaction: toggle_reaction,
    protocol.Typing: typing,
}


async def dispatch(ctx: ActionContext, frame: protocol.ClientFrame) -> None:
    """Run the frame's handler; FrameError propagates to the consumer as an `error` frame."""
    handler = HANDLERS.get(type(frame))
    if handler is None:
        raise protocol.FrameError("unknown_type", "This frame type is not available here.")
    await handler(ctx, frame)


__all__ = ["HANDLERS", "ActionContext", "dispatch"]
