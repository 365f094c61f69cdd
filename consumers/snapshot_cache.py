"""The shared part of a public room's snapshot, reused by the tabs that open it while nothing
in the room can have changed (issue 15).

A reconnect storm opens every room's tabs one after another, a few at a time; `FreshReads`
only shares a read between tabs that asked while it ran, so each tab still cost the room's
snapshot queries, the largest part of a connect. Here a read is kept and handed to later tabs
while all of these hold:

- the process was subscribed to the room's frames before the read began, and still is, on
  the same subscription (`RoomLink`): a change committed after the read began is announced
  after it, so the process is bound to receive that frame;
- no frame or event of the room that may change a snapshot has arrived since the read began
  (`RoomLink.changes`; presence and typing frames do not count). A tab that joins now is
  subscribed, so a frame still on its way reaches it after this snapshot, as after a fresh
  read;
- the room is public: a private room's member list changes when an invite is accepted over
  HTTP, which sends no frame;
- it was read less than REUSE_FOR seconds ago: a change whose frame was lost (its process
  failed to publish) is not passed on for longer than that.

`sync` never uses it: a tab that asks to resync missed frames and reads afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .fanout import RoomFanout, RoomLink
from .fresh_reads import FreshReads
from .protocol.frames import SnapshotFrame

REUSE_FOR = 5.0  # seconds a kept snapshot may be handed out


@dataclass(frozen=True)
class KeptSnapshot:
    """A read and what made it valid when it began."""

    frame: SnapshotFrame
    link: RoomLink  # the room's subscription it was read under
    changes: int  # the subscription's change count when the read began
    read_at: float  # loop time the read began


class SnapshotCache:
    """`get(room_id)`: the room's shared snapshot, kept or read (see the module's docstring)."""

    def __init__(
        self,
        fanout: RoomFanout,
        read: Callable[[int], Awaitable[SnapshotFrame]],
        reuse_for: float = REUSE_FOR,
    ) -> None:
        self.fanout = fanout
        self._read_room = read
        self.reuse_for = reuse_for  # seconds a kept read stays usable at most
        self.reads: FreshReads[int, SnapshotFrame] = FreshReads(self._read)
        self.kept: dict[int, KeptSnapshot] = {}
        self.reused = 0  # snapshots handed out without a read (for tests and benchmarks)

    async def get(self, room_id: int) -> SnapshotFrame:
        kept = self.kept.get(room_id)
        if kept is not None:
            if self._still_valid(room_id, kept):
                self.reused += 1
                return kept.frame
            del self.kept[room_id]
        return await self.reads.get(room_id)

    def _still_valid(self, room_id: int, kept: KeptSnapshot) -> bool:
        link = kept.link
        return (
            self.fanout.links.get(room_id) is link
            and link.channel is not None
            and link.changes == kept.changes
            and asyncio.get_running_loop().time() - kept.read_at < self.reuse_for
        )

    async def _read(self, room_id: int) -> SnapshotFrame:
        link = self.fanout.links.get(room_id)
        subscribed = link is not None and link.channel is not None
        changes = link.changes if link is not None else 0
        began = asyncio.get_running_loop().time()
        frame = await self._read_room(room_id)
        if subscribed and link is not None and not frame["room"]["private"]:
            if len(self.kept) > len(self.fanout.links):
                self._forget_left_rooms()
            self.kept[room_id] = KeptSnapshot(frame, link, changes, began)
        return frame

    def _forget_left_rooms(self) -> None:
        """Drop what was kept for rooms this process no longer has sockets in."""
        for room_id in [r for r, k in self.kept.items() if self.fanout.links.get(r) is not k.link]:
            del self.kept[room_id]
