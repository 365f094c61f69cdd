"""`reaction.toggle`: a person's emoji on any message of the room, toggled, live everywhere."""

from __future__ import annotations

from channels.db import database_sync_to_async

from chatsite.conversation import writes

from .. import protocol
from ..broadcast import broadcast
from ..protocol import FrameError, ToggleReaction
from .context import ActionContext


async def toggle_reaction(ctx: ActionContext, frame: ToggleReaction) -> None:
    """Add or take back the reaction; everyone gets the message's reactions after it."""
    reactions = await database_sync_to_async(writes.toggle_reaction)(
        ctx.room.pk, frame.message_id, ctx.user, frame.emoji
    )
    if reactions is None:
        raise FrameError("not_found", "That message is not in this room.")
    await broadcast(ctx.room.pk, protocol.reaction_updated(frame.message_id, reactions))
