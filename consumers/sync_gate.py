"""`sync` paced per socket and per user (issue 12): a client that sends `sync` in a loop gets
fresh snapshots at a bounded rate instead of one snapshot (up to 512 KiB) per frame.

A `sync` that comes too soon is not refused: one snapshot is owed and sent as soon as the pace
allows; any further `sync` before then is folded into it. The tab still ends with a snapshot
newer than its last `sync`, which is all SPEC §6 asks of `sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from .throttle import PerProcess

log = logging.getLogger(__name__)

# One socket: a snapshot at most every this many seconds.
SOCKET_INTERVAL = 0.5
# One user, all their sockets on this process: this many snapshots a second, bursts of 10.
USER_RATE = 4.0
USER_BURST = 10.0

_user_pace = PerProcess(USER_RATE, USER_BURST)

Answer = Callable[[], Awaitable[None]]


class SyncGate:
    """The pace of snapshots of one socket (see the module's doc)."""

    def __init__(self, user_key: Hashable, interval: float = SOCKET_INTERVAL) -> None:
        self.user_key = user_key
        self.interval = interval
        self.last = -interval
        self.owed: asyncio.Task[None] | None = None
        self.answered = 0  # snapshots sent through the gate
        self.folded = 0  # `sync` frames folded into an owed snapshot

    def sent(self) -> None:
        """A snapshot went out by another path (the one after connect)."""
        self.last = time.monotonic()

    def _wait(self) -> float:
        own = self.last + self.interval - time.monotonic()
        return max(own, _user_pace.buckets().wait(self.user_key), 0.0)

    async def request(self, answer: Answer) -> None:
        """Answer a `sync` now if the pace allows, else owe one snapshot (only one)."""
        if self.owed is not None:
            self.folded += 1
            return
        if self._wait() == 0.0 and _user_pace.buckets().take(self.user_key) == 0.0:
            await self._answer(answer)
            return
        self.owed = asyncio.create_task(self._later(answer), name="owed snapshot")

    async def _answer(self, answer: Answer) -> None:
        self.last = time.monotonic()
        self.answered += 1
        await answer()

    async def _later(self, answer: Answer) -> None:
        try:
            while True:
                await asyncio.sleep(self._wait())
                if _user_pace.buckets().take(self.user_key) == 0.0:
                    break
            # A `sync` arriving from now on may need a newer snapshot than this one: owe anew.
            self.owed = None
            await self._answer(answer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away meanwhile, or the room did
            log.info("owed snapshot not sent: %s: %s", type(exc).__name__, exc)
        finally:
            if self.owed is asyncio.current_task():
                self.owed = None

    def close(self) -> None:
        """The socket closed: forget the owed snapshot."""
        if self.owed is not None:
            self.owed.cancel()
            self.owed = None


async def drain(gate: SyncGate) -> None:
    """Wait for an owed snapshot to go out (for tests and shutdown)."""
    task = gate.owed
    if task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await task
