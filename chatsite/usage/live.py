"""Live figures each process keeps in the shared store for /metrics: its open websockets
(a key per process, refreshed, expiring when the process dies) and refusals by code."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

from .store import counters, key

log = logging.getLogger(__name__)

SOCKETS_EVERY = 10.0  # seconds between refreshes of this process's socket count
SOCKETS_TTL = 35  # seconds the count outlives a process that stopped refreshing it

PROCESS_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def sockets_prefix() -> str:
    return key("metrics", "ws", "")


def refusals_key() -> str:
    return key("metrics", "refusals")


class SocketGauge:
    """This process's open room websockets, published to the store."""

    def __init__(self) -> None:
        self.open = 0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publish_soon = asyncio.Event()

    def opened(self) -> None:
        self.open += 1
        self._changed()

    def closed(self) -> None:
        self.open = max(0, self.open - 1)
        self._changed()

    def _changed(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._publish_soon = asyncio.Event()
            self._task = loop.create_task(self._publisher(), name="metrics-sockets")
        self._publish_soon.set()

    async def _publisher(self) -> None:
        """Publish at once after a change (coalesced), and every SOCKETS_EVERY anyway."""
        while True:
            try:
                await counters().put(sockets_prefix() + PROCESS_ID, self.open, SOCKETS_TTL)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("socket count not published: %s", exc)
            self._publish_soon.clear()
            try:
                await asyncio.wait_for(self._publish_soon.wait(), SOCKETS_EVERY)
            except TimeoutError:
                pass


sockets = SocketGauge()
_pending: set[asyncio.Task[None]] = set()  # refusal counts on their way (kept from the GC)


def count_refusal(code: str) -> None:
    """Count one refused frame (an `error` frame sent), without delaying the socket."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_count_refusal(code))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _count_refusal(code: str) -> None:
    try:
        await counters().hincr(refusals_key(), code)
    except Exception as exc:
        log.debug("refusal not counted: %s", exc)
