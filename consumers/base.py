"""What Roomchat's websocket consumer changes in Channels itself: no channel-layer channel of
its own, and no database clean-up hop per message."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

# A channel-layer alias that is never configured: `get_channel_layer` gives None for it.
NO_LAYER = "roomchat-consumers-use-the-fanout"


class RoomchatConsumerBase(AsyncWebsocketConsumer):
    """AsyncWebsocketConsumer fed by the process's fan-out rather than by a channel of its own."""

    # Room frames and room events reach a socket through the process's one subscription per
    # room (consumers/fanout.py), never through a channel of the socket's own. Channels would
    # still open one per socket (a Redis subscription and a reading task each, at every
    # connect and for as long as the socket lives): with no layer, it does not.
    channel_layer_alias = NO_LAYER

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Called for every ASGI message and room event: run its handler.

        Channels first sends every message through `aclose_old_connections` (a hop to the
        database thread); each database call here runs through `database_sync_to_async`,
        which closes stale connections itself, so the hop only cost time per frame.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
