"""One local fan-out per process: a room frame from the channel layer is written to every socket
of that room on this process in one loop.

The process opens a channel of its own for a room and joins the room's group with it when its
first socket of the room arrives (and leaves when the last one goes), so the layer carries one
message per room frame per process instead of one per socket, and no consumer task wakes per
frame. The
frame's text was JSON-encoded once by `broadcast`; here it is framed as a websocket message once
(`Frame.prepared`) and written to each socket's connection straight away: no task, queue,
msgpack decode, session wrapper or database hop per socket.

Each socket is an `Outlet` (consumers/outlet.py): frames held back while its snapshot is sent,
a client that stopped reading dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.layers import get_channel_layer

from .broadcast import BROADCAST_EVENT, room_group
from .outlet import Frame, Outlet

log = logging.getLogger(__name__)

READ_RETRY_MAX = 2.0  # seconds between attempts to read from an unreachable channel layer
REJOIN_DEDUPE = 1.0  # seconds: one rejoin of a room serves all its sockets' asks
# Room frames that never change what a snapshot shows (they do not count as `changes`).
SNAPSHOT_NEUTRAL = frozenset({"presence", "typing"})


class RoomLink:
    """This process's subscription to one room: its channel in the room's group, the task
    reading it, and the room's sockets here."""

    def __init__(self, room_id: int) -> None:
        self.room_id = room_id
        self.outlets: set[Outlet] = set()
        self.channel: str | None = None  # in the room's group once joined
        self.reader: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # one membership change at a time
        self.rejoined_at = -1e9  # loop time of the last rejoin
        # Frames, events and (re)subscriptions that may have changed the room's snapshot since
        # the link was made: a kept snapshot is valid while this stays (consumers/snapshot_cache).
        self.changes = 0


class RoomFanout:
    """This process's sockets by room, and the one layer subscription per room feeding them.

    Each room gets a channel of its own on the layer (so any event sent to the room's group
    reaches it, whatever its shape); room frames (`room.broadcast`) are written to the sockets
    here, other events (e.g. `room.access`) are handed to each socket's consumer.
    """

    def __init__(self, layer: Any = None) -> None:
        self._fixed_layer = layer  # None: the default channel layer, looked up when needed
        self.links: dict[int, RoomLink] = {}
        self.frames = 0  # room frames received from the layer
        self.writes = 0  # socket writes they made

    def layer(self) -> Any:
        return self._fixed_layer if self._fixed_layer is not None else get_channel_layer()

    def sockets(self, room_id: int) -> int:
        """This process's sockets in the room."""
        link = self.links.get(room_id)
        return len(link.outlets) if link else 0

    async def join(self, room_id: int, outlet: Outlet) -> None:
        """Add a socket to the room; the process joins the room's group if it was not in it.

        Returns once frames of the room reach the outlet (held until `release`); raises if
        the layer cannot be joined (the caller closes the socket, the browser retries).
        """
        link = self.links.get(room_id)
        if link is None:
            link = self.links[room_id] = RoomLink(room_id)
        link.outlets.add(outlet)
        layer = self.layer()
        if layer is None:
            return
        try:
            async with link.lock:
                if link.channel is None:
                    await self._subscribe(layer, room_id, link)
        except BaseException:
            self.leave(room_id, outlet)
            raise

    async def _subscribe(self, layer: Any, room_id: int, link: RoomLink) -> None:
        # The default prefix: the core layer reads all of a process's channels from one inbox.
        channel = await layer.new_channel()
        try:
            await layer.group_add(room_group(room_id), channel)
        except BaseException:
            with contextlib.suppress(Exception):
                await layer.group_discard(room_group(room_id), channel)
            raise
        link.channel = channel
        link.changes += 1  # frames may have been missed while not subscribed
        link.reader = asyncio.get_running_loop().create_task(
            self._read(layer, room_id, link, channel), name=f"room-fanout-{room_id}"
        )

    def leave(self, room_id: int, outlet: Outlet) -> None:
        """Remove a socket; the process leaves the group when it was the room's last here."""
        outlet.close()
        link = self.links.get(room_id)
        if link is None:
            return
        link.outlets.discard(outlet)
        if not link.outlets:
            asyncio.get_running_loop().create_task(self._unsubscribe(room_id, link))

    async def _unsubscribe(self, room_id: int, link: RoomLink) -> None:
        async with link.lock:
            if link.outlets or self.links.get(room_id) is not link:
                return  # someone joined meanwhile, or already gone
            del self.links[room_id]
            channel, link.channel = link.channel, None
            if link.reader is not None:
                link.reader.cancel()  # the layer unsubscribes a cancelled receive's channel
            layer = self.layer()
            if channel is not None and layer is not None:
                with contextlib.suppress(Exception):
                    await layer.group_discard(room_group(room_id), channel)

    async def rejoin(self) -> None:
        """Join every room's group again: after Redis lost the groups, or before they expire
        (`group_expiry` of the core layer). Raises while the layer is unreachable."""
        layer = self.layer()
        if layer is None:
            return
        for room_id, link in list(self.links.items()):
            async with link.lock:
                link.changes += 1  # the groups were lost or about to be: frames may be too
                if link.channel is not None and link.reader is not None and not link.reader.done():
                    await layer.group_add(room_group(room_id), link.channel)
                elif link.outlets and self.links.get(room_id) is link:
                    await self._subscribe(layer, room_id, link)

    async def rejoin_room(self, room_id: int, within: float = REJOIN_DEDUPE) -> None:
        """Join one room's group again (each socket of the room asks; one join serves all the
        asks within `within` seconds)."""
        link = self.links.get(room_id)
        layer = self.layer()
        if link is None or layer is None:
            return
        clock = asyncio.get_running_loop().time
        if clock() - link.rejoined_at < within:
            return
        async with link.lock:
            if clock() - link.rejoined_at < within:
                return  # another socket of the room did it while this one waited
            if self.links.get(room_id) is not link or not link.outlets:
                return
            link.changes += 1
            if link.channel is not None and link.reader is not None and not link.reader.done():
                await layer.group_add(room_group(room_id), link.channel)
            else:
                await self._subscribe(layer, room_id, link)
            link.rejoined_at = clock()  # only once it worked: a failed rejoin is retried

    def deliver(self, room_id: int, frame: Frame, kind: str | None = None) -> None:
        """Write one room frame (of type `kind`) to each of the room's sockets here, in one loop."""
        link = self.links.get(room_id)
        if link is None:
            return
        if kind not in SNAPSHOT_NEUTRAL:
            link.changes += 1
        if not link.outlets:
            return
        self.frames += 1
        for outlet in tuple(link.outlets):
            outlet.deliver(frame)
        self.writes += len(link.outlets)

    def room_event(self, room_id: int, message: dict[str, Any]) -> None:
        """Hand an event other than a frame to each consumer of the room here."""
        link = self.links.get(room_id)
        if link is not None:
            link.changes += 1  # e.g. `room.access`: the room's privacy or members changed
        for outlet in tuple(link.outlets) if link else ():
            outlet.notify(message)

    async def _read(self, layer: Any, room_id: int, link: RoomLink, channel: str) -> None:
        delay = 0.1
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: wait; the lifecycle rejoins and resyncs
                log.debug("room %s's channel unreadable, retrying: %s", room_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, READ_RETRY_MAX)
                continue
            delay = 0.1
            try:
                if message.get("type") == BROADCAST_EVENT:
                    frame = Frame(message["frame"], message.get("skip_user"))
                    self.deliver(room_id, frame, message.get("kind"))
                else:
                    self.room_event(room_id, message)
            except Exception:  # one bad frame or socket must never stop the room's stream
                log.exception("fan-out to room %s failed", room_id)

    def stop(self) -> None:
        for link in self.links.values():
            if link.reader is not None:
                link.reader.cancel()
        self.links.clear()


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
