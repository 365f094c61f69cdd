"""One local fan-out per process: a room frame from the channel layer is written to every socket
of that room on this process in one loop.

The process holds one channel on the layer and joins a room's group with it when its first
socket of the room arrives (and leaves when the last one goes), so the layer carries one message
per room frame per process instead of one per socket, and no consumer task wakes per frame. The
frame's text was JSON-encoded once by `broadcast`; here it is framed as a websocket message once
(`Frame.prepared`) and written to each socket's connection straight away: no task, queue,
msgpack decode, session wrapper or database hop per socket.

A socket's `Outlet` holds frames back while its snapshot is being read and sent (`hold` /
`release`), so a tab never sees a frame older than its snapshot before it, and none is lost
between the two. A client that stops reading is dropped once its unsent bytes pass
WS_MAX_BACKLOG_BYTES (it reconnects and resyncs); the others never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from channels.layers import get_channel_layer

from bench import proto_wire as wire
from consumers.broadcast import BROADCAST_EVENT, room_group

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
READ_RETRY_MAX = 2.0  # seconds between attempts to read from an unreachable channel layer


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

    def __init__(self, send: Send, username: str, max_backlog: int, label: str = "") -> None:
        self.send = send  # the socket's ASGI send (the fallback path)
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


class RoomFanout:
    """This process's sockets by room, and the one layer subscription per room feeding them."""

    def __init__(self) -> None:
        self.rooms: dict[int, set[Outlet]] = {}
        self.channel: str | None = None  # this process's channel on the layer
        self._layer: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._joined: set[int] = set()  # rooms whose group our channel is in
        self._locks: dict[int, asyncio.Lock] = {}  # one membership change of a room at a time
        self.frames = 0  # room frames received from the layer
        self.writes = 0  # socket writes they made

    async def _ensure_channel(self) -> Any:
        layer = get_channel_layer()
        if layer is None:
            return None
        running = self._reader is not None and not self._reader.done()
        if layer is not self._layer or self.channel is None or not running:
            self._layer = layer
            self.channel = await layer.new_channel("roomchat.fanout.")
            self._joined.clear()
            self._reader = asyncio.get_running_loop().create_task(
                self._read(layer, self.channel), name="room-fanout"
            )
        return layer

    async def join(self, room_id: int, outlet: Outlet) -> None:
        """Add a socket to the room; the process joins the room's group if it was not in it.

        Returns once frames of the room reach the outlet (held until `release`); raises if
        the layer cannot be joined (the caller closes the socket, the browser retries).
        """
        layer = await self._ensure_channel()
        self.rooms.setdefault(room_id, set()).add(outlet)
        if layer is None:
            return
        try:
            async with self._lock(room_id):
                if room_id not in self._joined:
                    await layer.group_add(room_group(room_id), self.channel)
                    self._joined.add(room_id)
        except BaseException:
            self._forget(room_id, outlet)
            raise

    def leave(self, room_id: int, outlet: Outlet) -> None:
        """Remove a socket; the process leaves the group when it was the room's last here."""
        outlet.close()
        if self._forget(room_id, outlet) and room_id in self._joined:
            asyncio.get_running_loop().create_task(self._leave_group(room_id))

    def _forget(self, room_id: int, outlet: Outlet) -> bool:
        """Drop the outlet; True when the room has no socket here any more."""
        outlets = self.rooms.get(room_id)
        if outlets is None:
            return True
        outlets.discard(outlet)
        if outlets:
            return False
        del self.rooms[room_id]
        return True

    async def _leave_group(self, room_id: int) -> None:
        async with self._lock(room_id):
            if room_id in self.rooms or room_id not in self._joined:
                return  # someone joined meanwhile, or already left
            self._joined.discard(room_id)
            with contextlib.suppress(Exception):
                await self._layer.group_discard(room_group(room_id), self.channel)
        if not self._locks[room_id].locked() and room_id not in self.rooms:
            self._locks.pop(room_id, None)

    async def rejoin(self) -> None:
        """Join every room's group again: after Redis lost the groups, or before they expire
        (`group_expiry` of the core layer). Raises while the layer is unreachable."""
        layer = await self._ensure_channel()
        if layer is None:
            return
        for room_id in list(self.rooms):
            async with self._lock(room_id):
                if room_id in self.rooms:
                    await layer.group_add(room_group(room_id), self.channel)
                    self._joined.add(room_id)

    def deliver(self, room_id: int, frame: Frame) -> None:
        """Write one room frame to each of the room's sockets here, in one loop."""
        outlets = self.rooms.get(room_id)
        if not outlets:
            return
        self.frames += 1
        for outlet in tuple(outlets):
            outlet.deliver(frame)
        self.writes += len(outlets)

    def _lock(self, room_id: int) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    async def _read(self, layer: Any, channel: str) -> None:
        delay = 0.1
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: wait; the lifecycle rejoins and resyncs
                log.debug("fan-out channel unreadable, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, READ_RETRY_MAX)
                continue
            delay = 0.1
            if message.get("type") != BROADCAST_EVENT or "room" not in message:
                continue
            try:
                self.deliver(
                    int(message["room"]), Frame(message["frame"], message.get("skip_user"))
                )
            except Exception:  # one bad frame or socket must never stop the room's stream
                log.exception("fan-out of a frame to room %s failed", message.get("room"))

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._reader = None
        self.channel = None
        self._layer = None
        self._joined.clear()


_fanout: RoomFanout | None = None


def room_fanout() -> RoomFanout:
    """This process's fan-out."""
    global _fanout
    if _fanout is None:
        _fanout = RoomFanout()
    return _fanout


def reset_room_fanout() -> None:
    """Forget the fan-out (tests start each case as a fresh process)."""
    global _fanout
    if _fanout is not None:
        _fanout.stop()
    _fanout = None
