"""A running reply as every tab sees it: its deltas, recorded in the shared live state (for
exact snapshots) and then sent to the room, in `seq` order, through the emitter."""

from __future__ import annotations

import logging

from . import protocol
from .broadcast import broadcast
from .emitter import DeltaEmitter
from .state import SharedState

log = logging.getLogger(__name__)


class LiveReply:
    """The live text of one reply: recorded, sent, rebuilt after Redis lost it, cleared."""

    def __init__(self, state: SharedState, room_id: int, message_id: int, interval: float) -> None:
        self.state = state
        self.room_id = room_id
        self.message_id = message_id
        self.emitter = DeltaEmitter(interval, self._publish)
        # Set when the reply was ended elsewhere: nothing more is recorded or sent.
        self.silenced = False
        # Set when the reply's ending is being stored: the live state is no longer rewritten.
        self.closed = False
        # Model calls this reply made (retries + 1), counted by consumers.reply_cost.
        self.attempts = 0
        self._publish_failed = False

    async def start(self, model: str) -> None:
        """A new reply: empty live state, and `generation.started` to the room."""
        try:
            await self.state.live.start(self.room_id, self.message_id)
        except Exception as exc:
            log.warning("live state of reply %s not started: %s", self.message_id, exc)
        await broadcast(self.room_id, protocol.generation_started(self.message_id, model))

    async def _publish(self, seq: int, text: str) -> None:
        """Record delta `seq` in the live state, then send it to the room."""
        if self.silenced:
            return
        try:
            full = self.emitter.text if self._publish_failed else None
            done = await self.state.live.append(self.room_id, self.message_id, seq, text, full)
            if not done:  # the live state was lost (Redis restarted): rebuild it whole
                await self.state.live.append(
                    self.room_id, self.message_id, seq, text, self.emitter.text
                )
            self._publish_failed = False
        except Exception as exc:
            self._publish_failed = True
            log.warning("live state of reply %s not updated: %s", self.message_id, exc)
        await broadcast(self.room_id, protocol.generation_delta(self.message_id, seq, text))

    async def restore(self) -> None:
        """Write the live state (text of deltas 1..seq) again: Redis restarted and lost it.

        Under the emitter's lock, so no delta is recorded meanwhile and seq and text agree.
        """
        async with self.emitter.lock:
            if self.closed:
                return
            await self.state.live.append(
                self.room_id, self.message_id, self.emitter.seq, "", self.emitter.text
            )

    async def clear(self) -> None:
        """Forget the live state once the ending is stored (logged when Redis is away)."""
        try:
            await self.state.live.clear(self.room_id, self.message_id)
        except Exception as exc:
            log.warning("live state of reply %s not cleared: %s", self.message_id, exc)
