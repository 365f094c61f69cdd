"""The frames and new sockets one person may have a process handle (issue 12): all their
sockets together, in any room. Parsing and answering a frame costs the process's one event loop; a person flooding
from many sockets would otherwise slow every room on it. Past the budget a frame is refused
with `rate_limited` (the socket's flood guard then closes it with 4429, SPEC §6).
"""

from __future__ import annotations

import math

from django.conf import settings

from .protocol import FrameError
from .throttle import PerProcess

FRAMES_PER_SECOND = 20.0  # sustained, per person and process
FRAME_BURST = 60.0
# A socket closed with 4429 that goes on sending this many frames is cut off (TCP abort).
ABORT_AFTER = 50

# Sockets one person may open on a process: each costs a snapshot (up to 512 KiB) at once.
# Bursts of settings.CHAT_CONNECT_BURST, then this many a second.
CONNECTS_PER_SECOND = 1.0

_frames = PerProcess(FRAMES_PER_SECOND, FRAME_BURST)
_connects: dict[int, PerProcess] = {}  # by burst (settings.CHAT_CONNECT_BURST)


def may_connect(user_id: int) -> bool:
    """Count one new socket of this person; False past the pace (the socket closes, 4429)."""
    burst = settings.CHAT_CONNECT_BURST
    if not burst:
        return True
    pace = _connects.setdefault(burst, PerProcess(CONNECTS_PER_SECOND, float(burst)))
    return pace.buckets().take(user_id) == 0.0


def spend(user_id: int) -> None:
    """Count one frame of this person; FrameError `rate_limited` when over the budget."""
    wait = _frames.buckets().take(user_id)
    if wait > 0:
        raise FrameError(
            "rate_limited",
            "You are sending frames too fast. Slow down.",
            retry_after=math.ceil(wait * 10) / 10,
        )
