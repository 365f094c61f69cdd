"""Whether the channel layer carries frames: a channel of this process that frames are sent
to and read back from (after a Redis outage, before snapshots are resent); and how often group
memberships must be renewed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from channels.layers import get_channel_layer

REJOIN_EVERY = 3600.0  # re-add group memberships well inside channels_redis' 24 h expiry


class LayerProbe:
    """A channel of this process that frames can be sent to, to prove the layer works again."""

    def __init__(self) -> None:
        self.channel: str | None = None
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def round_trip(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        layer = get_channel_layer()
        if layer is None:
            return True
        if self.channel is None:
            self.channel = await layer.new_channel()
            # One reader for the process's lifetime: cancelling a pubsub receive unsubscribes.
            self.reader = asyncio.create_task(self._read(layer, self.channel))
        while loop.time() < deadline:
            nonce = uuid.uuid4().hex
            arrived = self.waiting[nonce] = loop.create_future()
            try:
                await layer.send(self.channel, {"type": "probe", "nonce": nonce})
                await asyncio.wait_for(arrived, min(1.0, max(0.01, deadline - loop.time())))
                return True
            except Exception:
                await asyncio.sleep(0.2)
            finally:
                self.waiting.pop(nonce, None)
        return False

    async def _read(self, layer: Any, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis still away (core layer): try again shortly
                await asyncio.sleep(0.5)
                continue
            future = self.waiting.get(message.get("nonce", ""))
            if future is not None and not future.done():
                future.set_result(None)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()


def rejoin_interval() -> float:
    """How often memberships are renewed: well inside the layer's group expiry."""
    expiry = getattr(get_channel_layer(), "group_expiry", None)
    if isinstance(expiry, int | float) and expiry > 0:
        return max(1.0, min(REJOIN_EVERY, expiry / 4))
    return REJOIN_EVERY
