"""Who is in a room, on any process, and telling the room when that changes.

Announcements are debounced per room and process, and the set is read when the frame leaves,
not when the change happened: two joins on two processes then both publish the set that
holds both (an announcement computed at join time could be published after a newer one and
leave every tab with a stale list), and a crowd arriving at once costs a few frames a second
instead of one frame per join to every tab already there.
"""

from __future__ import annotations

import asyncio
import logging

from . import protocol
from .broadcast import broadcast
from .state import shared_state

log = logging.getLogger(__name__)

ANNOUNCE_DELAY = 0.2  # seconds a room's announcement waits for further joins and leaves


async def users(room_id: int) -> list[str]:
    """Sorted usernames connected to the room on any process ([] when unreadable)."""
    try:
        return await shared_state().presence.users(room_id)
    except Exception as exc:
        log.warning("presence of room %s unreadable: %s", room_id, exc)
        return []


async def join(room_id: int, conn_id: str, username: str) -> list[str]:
    """Mark a connection present; the room hears of it if its set of people changed."""
    before = await users(room_id)
    try:
        await shared_state().presence.join(room_id, conn_id, username)
    except Exception as exc:
        log.warning("presence join in room %s failed: %s", room_id, exc)
    after = await users(room_id)
    if after != before:
        announcer().changed(room_id)
    return after


async def leave(room_id: int, conn_id: str) -> None:
    """Forget a connection; the room hears of it if its set of people changed."""
    before = await users(room_id)
    try:
        await shared_state().presence.leave(room_id, conn_id)
    except Exception as exc:
        log.warning("presence leave in room %s failed: %s", room_id, exc)
        return
    if await users(room_id) != before:
        announcer().changed(room_id)


class PresenceAnnouncer:
    """Sends each changed room its `presence` once the changes have settled."""

    def __init__(self, delay: float = ANNOUNCE_DELAY) -> None:
        self.delay = delay  # seconds between a change and its announcement
        self.pending: dict[int, asyncio.Task[None]] = {}  # rooms with an announcement due

    def changed(self, room_id: int) -> None:
        """Called after a join or leave changed the room's set: announce it soon, once."""
        loop = asyncio.get_running_loop()
        due = self.pending.get(room_id)
        # A task of another (closed) loop never runs: only a live one makes this a no-op.
        if due is None or due.done() or due.get_loop() is not loop:
            self.pending[room_id] = loop.create_task(self._announce_later(room_id))

    async def _announce_later(self, room_id: int) -> None:
        try:
            await asyncio.sleep(self.delay)
        finally:
            if self.pending.get(room_id) is asyncio.current_task():
                del self.pending[room_id]
        await announce(room_id)

    async def flush(self) -> None:
        """Send every due announcement now (the process is about to stop)."""
        due = list(self.pending)
        for task in self.pending.values():
            task.cancel()
        self.pending.clear()
        for room_id in due:
            await announce(room_id)


async def announce(room_id: int) -> None:
    """Tell the room who is there now."""
    await broadcast(room_id, protocol.presence(await users(room_id)))


_announcer: PresenceAnnouncer | None = None


def announcer() -> PresenceAnnouncer:
    """This process's announcer."""
    global _announcer
    if _announcer is None:
        _announcer = PresenceAnnouncer()
    return _announcer


def reset_announcer() -> None:
    """Forget the announcer (tests start each case as a fresh process)."""
    global _announcer
    _announcer = None
