"""What Roomchat's websocket consumer changes in Channels itself: a channel-layer read that
waits for Redis instead of ending the socket, and room broadcasts forwarded without Channels'
per-message database clean-up hop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .broadcast import BROADCAST_EVENT

log = logging.getLogger(__name__)

LAYER_RETRY_MAX = 2.0  # seconds between attempts to read from an unreachable channel layer

LayerReceive = Callable[[], Awaitable[dict[str, Any]]]


class RoomchatConsumerBase(AsyncWebsocketConsumer):
    """AsyncWebsocketConsumer with a patient layer read and a fast path for room broadcasts."""

    _layer_receive: LayerReceive | None = None

    # Channels sets `channel_receive` (the read from the channel layer) at the start of every
    # connection and lets any exception from it end the consumer: with the core layer a Redis
    # restart would close every socket with 1011 and a traceback. Wrapped, the read waits for
    # Redis instead; `consumers.recovery` rejoins the groups and resends snapshots after.
    @property
    def channel_receive(self) -> LayerReceive:
        assert self._layer_receive is not None
        return self._layer_receive

    @channel_receive.setter
    def channel_receive(self, receive: LayerReceive) -> None:
        async def patient_receive() -> dict[str, Any]:
            delay = 0.1
            while True:
                try:
                    return await receive()
                except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
                    log.debug("channel layer unreadable, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAYER_RETRY_MAX)

        self._layer_receive = patient_receive

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Called for every event; room broadcasts skip Channels' per-message DB cleanup hop."""
        if message.get("type") == BROADCAST_EVENT:
            # Forwarding a pre-encoded frame touches no database: no thread hop per delta.
            await self.room_broadcast(message)
            return
        await super().dispatch(message)

    async def room_broadcast(self, event: dict[str, Any]) -> None:
        """Called for each frame sent to the room's group (the subclass forwards it)."""
        raise NotImplementedError
