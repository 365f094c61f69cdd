"""The local fan-out (consumers/fanout.py) over a real in-memory channel layer: one subscription
per room per process, frames in order to every socket, held back while a snapshot is sent.

Sockets here are ASGI `send` callables recording what they are given (no daphne: the fan-out
then takes its fallback path; the direct daphne path is covered by the cross-process tests)."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer

from consumers.broadcast import BROADCAST_EVENT, room_group
from consumers.fanout import RoomFanout
from consumers.outlet import Outlet

MAX_BACKLOG = 1 << 20


class Tab:
    """What one socket was sent."""

    def __init__(self, username: str = "alice") -> None:
        self.frames: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.outlet = Outlet(self.send, username, MAX_BACKLOG, "test", on_event=self.on_event)

    async def send(self, message: dict[str, Any]) -> None:
        self.frames.append(message["text"])

    async def on_event(self, message: dict[str, Any]) -> None:
        self.events.append(message)


async def frame(layer: InMemoryChannelLayer, room_id: int, text: str, **extra: Any) -> None:
    await layer.group_send(room_group(room_id), {"type": BROADCAST_EVENT, "frame": text, **extra})


async def settle(condition: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_every_socket_of_a_room_gets_every_frame_in_order_through_one_subscription() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    tabs = [Tab() for _ in range(3)]
    other = Tab()
    for tab in tabs:
        await fanout.join(1, tab.outlet)
        tab.outlet.release()
    await fanout.join(2, other.outlet)
    other.outlet.release()
    # One channel of this process in each room's group, whatever its number of sockets.
    assert len(layer.groups[room_group(1)]) == 1
    for i in range(20):
        await frame(layer, 1, f"f{i}")
    await settle(lambda: all(len(t.frames) == 20 for t in tabs))
    assert all(t.frames == [f"f{i}" for i in range(20)] for t in tabs)
    assert other.frames == []
    assert fanout.frames == 20 and fanout.writes == 60


async def test_frames_wait_while_the_snapshot_is_sent_and_none_is_lost() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    tab = Tab()
    await fanout.join(1, tab.outlet)  # held from the start: its snapshot is not sent yet
    await frame(layer, 1, "delta-1")
    await frame(layer, 1, "delta-2")
    await settle(lambda: fanout.frames == 2)
    assert tab.frames == []
    await tab.send({"type": "websocket.send", "text": "snapshot"})
    tab.outlet.release()
    await frame(layer, 1, "delta-3")
    await settle(lambda: len(tab.frames) == 4)
    assert tab.frames == ["snapshot", "delta-1", "delta-2", "delta-3"]
    with tab.outlet.holding():  # a `sync`: the same again
        await frame(layer, 1, "delta-4")
        await settle(lambda: fanout.frames == 4)
        await tab.send({"type": "websocket.send", "text": "snapshot-2"})
    await settle(lambda: len(tab.frames) == 6)
    assert tab.frames[4:] == ["snapshot-2", "delta-4"]


async def test_the_last_socket_leaving_unsubscribes_and_a_new_one_subscribes_again() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    a, b = Tab(), Tab()
    await fanout.join(1, a.outlet)
    await fanout.join(1, b.outlet)
    fanout.leave(1, a.outlet)
    await asyncio.sleep(0.01)
    assert len(layer.groups.get(room_group(1), {})) == 1  # b is still there
    fanout.leave(1, b.outlet)
    await settle(lambda: not layer.groups.get(room_group(1)))
    assert fanout.sockets(1) == 0
    c = Tab()
    await fanout.join(1, c.outlet)
    c.outlet.release()
    await frame(layer, 1, "again")
    await settle(lambda: c.frames == ["again"])
    assert a.frames == b.frames == []


async def test_a_persons_own_tabs_skip_frames_meant_for_the_others() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    alice, bob = Tab("alice"), Tab("bob")
    for tab in (alice, bob):
        await fanout.join(1, tab.outlet)
        tab.outlet.release()
    await frame(layer, 1, "alice is typing", skip_user="alice")
    await frame(layer, 1, "for all")
    await settle(lambda: len(bob.frames) == 2)
    assert alice.frames == ["for all"]


async def test_other_room_events_reach_each_consumer_of_the_room() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    tabs = [Tab(), Tab()]
    for tab in tabs:
        await fanout.join(1, tab.outlet)
        tab.outlet.release()
    await layer.group_send(room_group(1), {"type": "room.access", "room_id": 1})
    await settle(lambda: all(t.events for t in tabs))
    assert [t.events for t in tabs] == [[{"type": "room.access", "room_id": 1}]] * 2


async def test_rejoin_restores_a_group_the_layer_lost() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    tab = Tab()
    await fanout.join(1, tab.outlet)
    tab.outlet.release()
    layer.groups.clear()  # what a Redis restart or group expiry does to memberships
    await frame(layer, 1, "lost")
    await fanout.rejoin()
    await frame(layer, 1, "after")
    await settle(lambda: tab.frames == ["after"])


async def test_concurrent_joins_of_a_new_room_all_wait_for_its_subscription() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    tabs = [Tab() for _ in range(10)]
    await asyncio.gather(*(fanout.join(1, t.outlet) for t in tabs))
    for tab in tabs:
        tab.outlet.release()
    assert len(layer.groups[room_group(1)]) == 1
    await frame(layer, 1, "x")
    await settle(lambda: all(t.frames == ["x"] for t in tabs))


async def test_each_socket_asking_to_rejoin_costs_one_join_of_its_room() -> None:
    layer = InMemoryChannelLayer()
    fanout = RoomFanout(layer)
    tabs = [Tab() for _ in range(5)]
    for tab in tabs:
        await fanout.join(1, tab.outlet)
        tab.outlet.release()
    layer.groups.clear()
    joins = 0
    original = layer.group_add

    async def counting_group_add(group: str, channel: str) -> None:
        nonlocal joins
        joins += 1
        await original(group, channel)

    layer.group_add = counting_group_add
    await asyncio.gather(*(fanout.rejoin_room(1) for _ in tabs))
    assert joins == 1
    await frame(layer, 1, "back")
    await settle(lambda: all(t.frames == ["back"] for t in tabs))
