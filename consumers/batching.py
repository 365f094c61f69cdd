"""Coalescing of model text into delta frames: the first at once, then at most one per interval.

Pure: time is passed in, so the rule can be tested without a clock or a socket.
"""

from __future__ import annotations


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
