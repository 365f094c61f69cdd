"""One socket as the process's fan-out (`consumers.fanout`) writes to it.

A room frame is JSON text, framed for the wire once (`Frame.prepared`) and written straight to
each open daphne connection (`consumers.wire`); elsewhere (tests' in-memory communicator) it goes
through the socket's ASGI `send`, in order. An `Outlet` holds frames back while its socket's
snapshot is being read and sent (`hold`/`release`), so a tab never sees a frame older than its
snapshot before it and none is lost between the two, and drops a client that stopped reading
once its unsent bytes pass WS_MAX_BACKLOG_BYTES (it reconnects and resyncs); the others never
wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from . import wire

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


class Frame:
    """One room frame, as text, and framed for the wire once for all sockets."""

    __slots__ = ("_prepared", "skip_user", "text")

    def __init__(self, text: str, skip_user: str | None = None) -> None:
        self.text = text
        self.skip_user = skip_user  # that person's own tabs do not get it (`typing`)
        self._prepared: Any = None

    @property
    def prepared(self) -> Any:
        if self._prepared is None:
            self._prepared = wire.prepare(self.text)
        return self._prepared


class Outlet:
    """One socket of this process in one room, as the fan-out writes to it."""

    def __init__(
        self,
        send: Send,
        username: str,
        max_backlog: int,
        label: str = "",
        on_event: Callable[[dict[str, Any]], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.send = send  # the socket's ASGI send (the fallback path)
        self.on_event = on_event  # the consumer's handler of other room events
        self.username = username
        self.max_backlog = max_backlog
        self.label = label  # for log lines
        self.connection = wire.connection(send)  # daphne's, or None (other servers, tests)
        self.closed = False
        self._held: list[Frame] | None = []  # frames waiting for the snapshot; None: live
        self._outbox: deque[str] = deque()  # fallback path: frames not yet sent, in order
        self._draining: asyncio.Task[None] | None = None

    def hold(self) -> None:
        """Keep room frames back until `release` (a snapshot is being read and sent)."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Write the frames held back, in order, and go live."""
        held, self._held = self._held, None
        for frame in held or ():
            self._write(frame)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        self.hold()
        try:
            yield
        finally:
            self.release()

    def deliver(self, frame: Frame) -> None:
        if self.closed or frame.skip_user == self.username:
            return
        if self._held is not None:
            self._held.append(frame)
            return
        self._write(frame)

    def notify(self, message: dict[str, Any]) -> None:
        """An event for the consumer (not a frame): its handler runs in a task of its own."""
        if self.on_event is not None and not self.closed:
            asyncio.get_running_loop().create_task(self.on_event(message))

    def close(self) -> None:
        self.closed = True
        self._held = None
        self._outbox.clear()

    def _write(self, frame: Frame) -> None:
        connection = self.connection
        if connection is None:
            self._outbox.append(frame.text)
            if self._draining is None or self._draining.done():
                self._draining = asyncio.get_running_loop().create_task(self._drain())
            return
        backlog = wire.backlog(connection)
        if backlog > self.max_backlog:
            self.closed = True
            log.warning(
                "closing a websocket in room %s: its client is not reading (%s bytes waiting)",
                self.label,
                backlog,
            )
            wire.abort(connection)
            return
        wire.write(connection, frame.prepared)

    async def _drain(self) -> None:
        """Send the outbox in order through the ASGI `send` (no daphne connection found)."""
        while self._outbox and not self.closed:
            text = self._outbox.popleft()
            try:
                await self.send({"type": "websocket.send", "text": text})
            except Exception as exc:  # the socket is closing
                log.debug("fan-out send failed: %s", exc)
                self.close()
