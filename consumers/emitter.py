"""Model text out as numbered delta frames: the first at once, then at most one per interval.

`DeltaBatcher` is the coalescing rule (pure: time is passed in, so it is tested without a
clock); `DeltaEmitter` runs it in a sender task of its own, numbering each frame (`seq`) and
handing it to the reply's `publish` (live state, then the room's group).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class DeltaBatcher:
    """Collects text and says when a frame may be sent."""

    def __init__(self, interval: float) -> None:
        self.interval = interval  # seconds between two frames of one reply
        self.pending: list[str] = []  # text received but not yet sent
        self.last_sent: float | None = None  # when the last frame left; None before the first

    @property
    def has_pending(self) -> bool:
        return bool(self.pending)

    def due_in(self, now: float) -> float:
        """Seconds until pending text may be sent (0 when it may go now)."""
        if self.last_sent is None:
            return 0.0
        return max(0.0, self.last_sent + self.interval - now)

    def put(self, text: str) -> None:
        """Take `text` to send with the next frame."""
        if text:
            self.pending.append(text)

    def add(self, text: str, now: float) -> str | None:
        """Take `text`; return the text to send now, or None to wait for the interval."""
        self.put(text)
        if self.pending and self.due_in(now) == 0.0:
            return self.take(now)
        return None

    def take(self, now: float) -> str | None:
        """Everything pending, as one frame's text (None if nothing is pending)."""
        if not self.pending:
            return None
        text = "".join(self.pending)
        self.pending.clear()
        self.last_sent = now
        return text


class DeltaEmitter:
    """Numbers and sends coalesced text from a sender task of its own.

    The model stream only appends text (`add` never waits for Redis): a slow fan-out then makes
    frames bigger instead of making the model stream wait, which would snowball into latency.
    """

    def __init__(
        self,
        interval: float,
        publish: Callable[[int, str], Awaitable[None]],
    ) -> None:
        self.batcher = DeltaBatcher(interval)
        self.publish = publish  # records and sends delta `seq` with its text; must not raise
        self.seq = 0  # the last seq sent
        self.parts: list[str] = []  # text of deltas 1..seq
        self._lock = asyncio.Lock()  # held while a delta is recorded and sent
        self._wake = asyncio.Event()  # text is pending, or the emitter is closing
        self._closing = False
        # Its own task, so that ending the model stream never half-sends a delta.
        self._sender: asyncio.Task[None] | None = None
        self.received_any = False  # any text from the model, sent or pending

    @property
    def text(self) -> str:
        """The text of deltas 1..seq (sent)."""
        return "".join(self.parts)

    @property
    def all_text(self) -> str:
        """Everything the model gave, sent or still waiting to leave."""
        return self.text + "".join(self.batcher.pending)

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a delta is recorded and sent: whoever holds it sees `seq` and `text` agree."""
        return self._lock

    async def add(self, text: str) -> None:
        """Queue model text; it leaves with the next frame (the first one at once)."""
        if not text:
            return
        self.received_any = True
        self.batcher.put(text)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())
        self._wake.set()

    async def flush(self) -> None:
        """Send whatever waits and stop the sender, before the reply's `generation.finished`."""
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            await self._sender

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.batcher.has_pending:
                delay = self.batcher.due_in(time.monotonic())
                if delay > 0 and not self._closing:
                    # Wakes early when closing, so the last frame does not wait the interval.
                    try:
                        await asyncio.wait_for(self._closed_signal(), delay)
                    except TimeoutError:
                        pass
                text = self.batcher.take(time.monotonic())
                if text is not None:
                    async with self._lock:
                        self.seq += 1
                        self.parts.append(text)
                        await self.publish(self.seq, text)
            if self._closing:
                return

    async def _closed_signal(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()
