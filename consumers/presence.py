"""Who is in a room, on any process, and telling the room when that changes.

Announcements are debounced per room and process, and the set is read when the frame leaves,
not when the change happened: two joins on two processes then both publish the set that
holds both (an announcement computed at join time could be published after a newer one and
leave every tab with a stale list), and a crowd arriving at once costs a few frames a second
instead of one frame per join to every tab already there. The entries themselves live in the
shared state (`consumers.state.presence`); this process refreshes its own sockets' entries.
"""

from __future__ import annotations

import asyncio
import logging

from . import protocol
from .broadcast import broadcast
from .sockets import SocketRegistry
from .state import SharedState

log = logging.getLogger(__name__)

ANNOUNCE_DELAY = 0.2  # seconds a room's announcement waits for further joins and leaves
# Seconds between two announcements of a room by this process at least: in a reconnect storm
# each room's tabs arrive one by one, and an announcement per arrival, written to every tab
# of the room, was a tenth of the storm's CPU (docs/benchmarks.md). A joining tab gets the
# list itself at once; the others see newcomers within this long.
ANNOUNCE_EVERY = 1.0


class RoomPresence:
    """Presence as this process's sockets see it: join, leave, refresh, announce."""

    def __init__(
        self, state: SharedState, delay: float = ANNOUNCE_DELAY, every: float = ANNOUNCE_EVERY
    ) -> None:
        self.state = state
        self.delay = delay  # seconds between a change and its announcement
        self.every = every  # seconds between two announcements of a room, at least
        self.pending: dict[int, asyncio.Task[None]] = {}  # rooms with an announcement due
        self.announced_at: dict[int, float] = {}  # loop time of each room's last announcement

    async def users(self, room_id: int) -> list[str]:
        """Sorted usernames connected to the room on any process ([] when unreadable)."""
        try:
            return await self.state.presence.users(room_id)
        except Exception as exc:
            log.warning("presence of room %s unreadable: %s", room_id, exc)
            return []

    async def join(self, room_id: int, conn_id: str, username: str) -> list[str]:
        """Mark a connection present; the room hears of it if its set of people changed."""
        try:
            users, new = await self.state.presence.join(room_id, conn_id, username)
        except Exception as exc:
            log.warning("presence join in room %s failed: %s", room_id, exc)
            return await self.users(room_id)
        if new:
            self.changed(room_id)
        return users

    async def leave(self, room_id: int, conn_id: str) -> None:
        """Forget a connection; the room hears of it if its set of people changed."""
        before = await self.users(room_id)
        try:
            await self.state.presence.leave(room_id, conn_id)
        except Exception as exc:
            log.warning("presence leave in room %s failed: %s", room_id, exc)
            return
        if await self.users(room_id) != before:
            self.changed(room_id)

    async def refresh(self, sockets: SocketRegistry, announce: bool = False) -> None:
        """Keep this process's connections present and drop those of dead processes.

        `announce`: also tell each of our rooms who is there (after Redis lost the sets).
        """
        shared = self.state.presence
        await shared.refresh([(e.room_id, e.socket.conn_id, e.username) for e in sockets.all()])
        # Entries of dead processes: their rooms hear who is left (the announcement reads it).
        for room_id in await shared.expire(await shared.rooms()):
            self.changed(room_id)
        if announce:
            for room_id in sockets.rooms():
                await self.announce(room_id)

    async def leave_all(self, sockets: SocketRegistry) -> None:
        """Take this process's connections out of presence and tell their rooms (shutdown).

        Daphne cancels the consumers on SIGTERM without running `disconnect`, so without
        this the people of a stopping process would linger in the list until they expire.
        """
        rooms = sockets.rooms()
        for entry in sockets.all():
            await self.state.presence.leave(entry.room_id, entry.socket.conn_id)
        sockets.clear()
        for room_id in rooms:
            await self.announce(room_id)

    def changed(self, room_id: int) -> None:
        """Called after a join or leave changed the room's set: announce it soon, once."""
        loop = asyncio.get_running_loop()
        due = self.pending.get(room_id)
        # A task of another (closed) loop never runs: only a live one makes this a no-op.
        if due is None or due.done() or due.get_loop() is not loop:
            last = self.announced_at.get(room_id, -self.every)
            wait = max(self.delay, last + self.every - loop.time())
            self.pending[room_id] = loop.create_task(self._announce_later(room_id, wait))

    async def _announce_later(self, room_id: int, wait: float) -> None:
        try:
            await asyncio.sleep(wait)
        finally:
            if self.pending.get(room_id) is asyncio.current_task():
                del self.pending[room_id]
        await self.announce(room_id)

    async def announce(self, room_id: int) -> None:
        """Tell the room who is there now."""
        now = asyncio.get_running_loop().time()
        if len(self.announced_at) > 10_000:  # only recent announcements matter
            self.announced_at = {r: t for r, t in self.announced_at.items() if now - t < self.every}
        self.announced_at[room_id] = now
        await broadcast(room_id, protocol.presence(await self.users(room_id)))

    def cancel_pending(self) -> None:
        """Drop due announcements (the process stops)."""
        for task in self.pending.values():
            task.cancel()
        self.pending.clear()
