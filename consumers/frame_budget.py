"""The frames one person may have a process handle (issue 12): all their sockets together, in
any room. Parsing and answering a frame costs the process's one event loop; a person flooding
from many sockets would otherwise slow every room on it. Past the budget a frame is refused
with `rate_limited` (the socket's flood guard then closes it with 4429, SPEC §6).
"""

from __future__ import annotations

import math

from .protocol import FrameError
from .throttle import KeyedBuckets

FRAMES_PER_SECOND = 20.0  # sustained, per person and process
FRAME_BURST = 60.0
# A socket closed with 4429 that goes on sending this many frames is cut off (TCP abort).
ABORT_AFTER = 50

_per_user = KeyedBuckets(FRAMES_PER_SECOND, FRAME_BURST)


def spend(user_id: int) -> None:
    """Count one frame of this person; FrameError `rate_limited` when over the budget."""
    wait = _per_user.take(user_id)
    if wait > 0:
        raise FrameError(
            "rate_limited",
            "You are sending frames too fast. Slow down.",
            retry_after=math.ceil(wait * 10) / 10,
        )
