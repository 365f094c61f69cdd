"""Reads of a public room's state, reused by the tabs that open it while nothing in the room
can have changed (issue 15): its row by slug and the shared part of its snapshot.

A reconnect storm opens every room's tabs one after another, a few at a time; `FreshReads`
only shares a read between tabs that asked while it ran, so each tab still paid for the
room's queries, the largest part of a connect. Here a read is kept and handed to later tabs
while all of these hold:

- the process was subscribed to the room's frames before the read began, and still is, on
  the same subscription (`RoomLink`): a change committed after the read began is announced
  after it, so the process is bound to receive that frame;
- no frame or event of the room that may change what was read has arrived since the read
  began (`RoomLink.changes`; presence and typing frames do not count). A tab that joins now
  is subscribed, so a frame still on its way reaches it after this read, as after a fresh one;
- the room is public: a private room's members change when an invite is accepted over HTTP,
  which sends no frame;
- it was read less than REUSE_FOR seconds ago: a change whose frame was lost (its process
  failed to publish) is not passed on for longer than that.

`sync` never uses these: a tab that asks to resync missed frames and reads afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .fanout import RoomFanout, RoomLink
from .fresh_reads import FreshReads

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

REUSE_FOR = 5.0  # seconds a kept read may be handed out

# What a read says of its room: (room id, private), or None when it found no room.
Describe = Callable[[K, V], "tuple[int, bool] | None"]


@dataclass(frozen=True)
class Kept(Generic[V]):
    """A read and what made it valid when it began."""

    value: V
    link: RoomLink  # the room's subscription it was read under
    changes: int  # the subscription's change count when the read began
    read_at: float  # loop time the read began


class KeptReads(Generic[K, V]):
    """`get(key)`: a room's state, kept or read (see the module's docstring)."""

    def __init__(
        self,
        fanout: RoomFanout,
        read: Callable[[K], Awaitable[V]],
        describe: Describe[K, V],
        room_of_key: Callable[[K], int | None] | None = None,
        reuse_for: float = REUSE_FOR,
    ) -> None:
        self.fanout = fanout
        self._read_value = read
        self._describe = describe  # the room a read found, and whether it is private
        self._room_of_key = room_of_key  # the room a key names, when the key says (an id)
        self.reuse_for = reuse_for  # seconds a kept read stays usable at most
        self.reads: FreshReads[K, V] = FreshReads(self._read)
        self.kept: dict[K, Kept[V]] = {}
        # The room each key was last read as (a slug's room id is known only once read).
        self.room_ids: dict[K, int] = {}
        self.reused = 0  # values handed out without a read (for tests and benchmarks)

    async def get(self, key: K) -> V:
        kept = self.kept.get(key)
        if kept is not None:
            if self._still_valid(kept):
                self.reused += 1
                return kept.value
            del self.kept[key]
        return await self.reads.get(key)

    def _still_valid(self, kept: Kept[V]) -> bool:
        link = kept.link
        return (
            link.channel is not None
            and self.fanout.links.get(link.room_id) is link
            and link.changes == kept.changes
            and asyncio.get_running_loop().time() - kept.read_at < self.reuse_for
        )

    async def _read(self, key: K) -> V:
        room_id = self._room_of_key(key) if self._room_of_key else self.room_ids.get(key)
        link = self.fanout.links.get(room_id) if room_id is not None else None
        subscribed = link is not None and link.channel is not None
        changes = link.changes if link is not None else 0
        began = asyncio.get_running_loop().time()
        value = await self._read_value(key)
        described = self._describe(key, value)
        if described is None:
            self.room_ids.pop(key, None)
            return value
        self.room_ids[key] = described[0]
        if subscribed and link is not None and described == (link.room_id, False):
            if len(self.kept) > len(self.fanout.links):
                self._forget_left_rooms()
            self.kept[key] = Kept(value, link, changes, began)
        return value

    def _forget_left_rooms(self) -> None:
        """Drop what was kept for rooms this process no longer has sockets in."""
        for key in [k for k, kept in self.kept.items() if not self._subscribed(kept.link)]:
            del self.kept[key]
        for key in [k for k, r in self.room_ids.items() if r not in self.fanout.links]:
            del self.room_ids[key]

    def _subscribed(self, link: RoomLink) -> bool:
        return self.fanout.links.get(link.room_id) is link
