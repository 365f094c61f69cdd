"""Kept reads (consumers/kept_reads.py) over a real in-memory channel layer and fan-out: a room's
snapshot or row reused only while the room's subscription proves nothing changed."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer

from consumers.broadcast import BROADCAST_EVENT, room_group
from consumers.fanout import RoomFanout
from consumers.kept_reads import KeptReads
from tests.unit.test_fanout import Tab, settle


class Room:
    """A stand-in for the database: each read returns the room's state at that moment."""

    def __init__(self, private: bool = False) -> None:
        self.private = private
        self.version = 0
        self.reads = 0
        self.read_delay = 0.0

    async def read(self, room_id: int) -> Any:
        self.reads += 1
        version = self.version
        await asyncio.sleep(self.read_delay)
        return {"room": {"private": self.private}, "version": version}

    async def read_by_slug(self, slug: str) -> Any:
        """The room's row by slug: room 1 is `lounge`; other slugs find nothing."""
        return await self.read(1) if slug == "lounge" else None


def snapshots(fanout: RoomFanout, room: Room, reuse_for: float = 5.0) -> KeptReads[int, Any]:
    """Like the process's `snapshots`: keyed by room id."""
    return KeptReads(
        fanout,
        room.read,
        lambda room_id, frame: (room_id, frame["room"]["private"]),
        room_of_key=lambda room_id: room_id,
        reuse_for=reuse_for,
    )


async def opened(
    private: bool = False, reuse_for: float = 5.0
) -> tuple[InMemoryChannelLayer, RoomFanout, Room, KeptReads[int, Any]]:
    """A room this process is subscribed to (one socket in it)."""
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    room = Room(private)
    cache = snapshots(fanout, room, reuse_for)
    tab = Tab()
    await fanout.join(1, tab.outlet)
    tab.outlet.release()
    return layer, fanout, room, cache


def version(frame: Any) -> int:
    """Which state of the room a snapshot shows (the stand-in's own field)."""
    return int(frame["version"])


async def send(layer: InMemoryChannelLayer, kind: str) -> None:
    event = {"type": BROADCAST_EVENT, "frame": f'{{"type":"{kind}"}}', "kind": kind}
    await layer.group_send(room_group(1), event)


async def test_tabs_opening_a_quiet_public_room_share_one_read() -> None:
    _, _, room, cache = await opened()
    frames = [await cache.get(1) for _ in range(5)]
    assert room.reads == 1 and cache.reused == 4
    assert all(f is frames[0] for f in frames)


async def test_a_frame_that_changes_the_room_makes_the_next_tab_read_again() -> None:
    layer, fanout, room, cache = await opened()
    await cache.get(1)
    room.version = 1
    await send(layer, "message.created")
    await settle(lambda: fanout.frames == 1)
    assert version(await cache.get(1)) == 1 and room.reads == 2


async def test_presence_and_typing_frames_do_not_count_as_changes() -> None:
    layer, fanout, room, cache = await opened()
    await cache.get(1)
    await send(layer, "presence")
    await send(layer, "typing")
    await settle(lambda: fanout.frames == 2)
    await cache.get(1)
    assert room.reads == 1


async def test_a_frame_arriving_while_the_read_runs_makes_that_read_single_use() -> None:
    layer, fanout, room, cache = await opened()
    room.read_delay = 0.05
    reading = asyncio.create_task(cache.get(1))
    await settle(lambda: room.reads == 1)  # the read has begun
    room.version = 1  # committed after the read began: the read may not show it
    await send(layer, "generation.delta")
    await settle(lambda: fanout.frames == 1)
    assert version(await reading) == 0
    room.read_delay = 0.0
    assert version(await cache.get(1)) == 1 and room.reads == 2


async def test_room_events_and_resubscribing_make_the_next_tab_read_again() -> None:
    layer, fanout, room, cache = await opened()
    await cache.get(1)
    await layer.group_send(room_group(1), {"type": "room.access"})
    await settle(lambda: fanout.links[1].changes >= 2)
    await cache.get(1)
    assert room.reads == 2
    await fanout.rejoin()  # e.g. after Redis lost the groups: frames may have been missed
    await cache.get(1)
    assert room.reads == 3


async def test_private_rooms_unsubscribed_rooms_and_old_reads_are_never_reused() -> None:
    _, _, room, cache = await opened(private=True)
    await cache.get(1)
    await cache.get(1)
    assert room.reads == 2  # an accepted invite changes the members without a frame
    _, _, room, cache = await opened()
    await cache.get(2)  # no socket of room 2 here: nothing proves it did not change
    await cache.get(2)
    assert room.reads == 2
    _, _, room, cache = await opened(reuse_for=0.05)
    await cache.get(1)
    await asyncio.sleep(0.06)
    await cache.get(1)
    assert room.reads == 2 and cache.reused == 0


async def test_a_room_left_and_opened_again_is_read_again() -> None:
    _, fanout, room, cache = await opened()
    await cache.get(1)
    (outlet,) = fanout.links[1].outlets
    fanout.leave(1, outlet)
    await settle(lambda: 1 not in fanout.links)
    tab = Tab()
    await fanout.join(1, tab.outlet)
    await cache.get(1)
    assert room.reads == 2


async def test_a_room_by_slug_is_kept_from_its_second_read_once_its_id_is_known() -> None:
    layer, fanout, room, _ = await opened()
    by_slug: KeptReads[str, Any] = KeptReads(
        fanout, room.read_by_slug, lambda slug, row: None if row is None else (1, False)
    )
    for _ in range(4):
        await by_slug.get("lounge")
    # The first read could not know the slug's room, so nothing proved it current; the second
    # began subscribed to room 1 and is handed to the rest.
    assert room.reads == 2 and by_slug.reused == 2
    await send(layer, "room.updated")  # e.g. the owner renamed it
    await settle(lambda: fanout.frames == 1)
    await by_slug.get("lounge")
    assert room.reads == 3
    assert await by_slug.get("nowhere") is None and await by_slug.get("nowhere") is None
    assert room.reads == 3 and by_slug.reused == 2
