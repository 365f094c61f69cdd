"""`reaction.toggle`: a person's emoji on any message of the room, toggled, live everywhere."""

from __future__ import annotations

import math

from channels.db import database_sync_to_async

from chatsite.conversation import writes

from .. import limit_guard, protocol
from ..broadcast import broadcast
from ..protocol import FrameError, ToggleReaction
from .context import ActionContext

# Toggles one person may make a minute, across processes: each one writes and tells the room.
REACTIONS_PER_MINUTE = 60


async def toggle_reaction(ctx: ActionContext, frame: ToggleReaction) -> None:
    """Add or take back the reaction; everyone gets the message's reactions after it."""
    wait = await limit_guard.hit(ctx.user.pk, REACTIONS_PER_MINUTE, 60.0, "reaction")
    if wait is not None:
        raise FrameError(
            "rate_limited",
            f"You can react {REACTIONS_PER_MINUTE} times a minute. Try again shortly.",
            retry_after=math.ceil(wait * 10) / 10,
        )
    reactions = await database_sync_to_async(writes.toggle_reaction)(
        ctx.room.pk, frame.message_id, ctx.user, frame.emoji
    )
    if reactions is None:
        raise FrameError("not_found", "That message is not in this room.")
    await broadcast(ctx.room.pk, protocol.reaction_updated(frame.message_id, reactions))
