"""Scale-out as Heroku runs it: three daphne processes over two Redis servers (issue 16).

`REDIS_URL` names both servers: the channel layer shards room groups over them, and each room's
live state (reply lock, live text, stop flags, presence) sits on its group's server. Tabs of
several rooms (rooms on either server) spread over the three processes, and every SPEC §6
guarantee is checked across them: identical deltas on every tab, a late join mid-reply, a stop
from another process, and a process killed mid-reply (the room freed, the reply stored
`interrupted` with the text so far).

Replies come from the `demo` provider (deterministic, at DEMO_WORDS_PER_SECOND), so many rooms
can stream at once without scripting a shared fake.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.rooms.models import Message, Room
from consumers.shards import room_url
from tests.conftest import DaphneFactory, WsConnect
from tests.support.auth import create_user, session_cookie
from tests.support.daphne import DaphneProcess
from tests.support.redis_server import RedisServer
from tests.support.wsclient import RoomSocket, follow_reply

pytestmark = pytest.mark.timeout(240)

PREFIX = "roomchat"  # REDIS_KEY_PREFIX's default, which the servers use
ROOMS_PER_SERVER = 2
SPEC_DEADLINE = 30.0  # a dead process's room is freed within this (SPEC §6)


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir=tmp_path / "redis-2").start()
    yield server
    server.close()


@sync_to_async
def make_rooms(unique: Any, urls: list[str]) -> tuple[list[Room], list[str]]:
    """Rooms until each Redis server carries ROOMS_PER_SERVER of them; three users' sessions."""
    people = [create_user(unique(name), password=None) for name in ("ann", "ben", "cat")]
    by_server: dict[str, list[Room]] = {url: [] for url in urls}
    while any(len(rooms) < ROOMS_PER_SERVER for rooms in by_server.values()):
        room = Room.objects.create(slug=unique("scale"), title="Scale", owner=people[0])
        rooms = by_server[room_url(room.pk, urls, layer="pubsub", prefix=PREFIX)]
        if len(rooms) < ROOMS_PER_SERVER:
            rooms.append(room)
        else:
            room.delete()
    ordered = [room for rooms in zip(*by_server.values(), strict=True) for room in rooms]
    return ordered, [session_cookie(person) for person in people]


def deltas(sock: RoomSocket, message_id: int) -> list[tuple[int, str]]:
    return [
        (int(frame["seq"]), str(frame["text"]))
        for frame in sock.frames
        if frame.get("type") == "generation.delta" and frame.get("message_id") == message_id
    ]


def server_of(room: Room, servers: list[RedisServer]) -> tuple[RedisServer, RedisServer]:
    """(the room's server, the other one)."""
    url = room_url(room.pk, [s.url for s in servers], layer="pubsub", prefix=PREFIX)
    home = next(s for s in servers if s.url == url)
    return home, next(s for s in servers if s is not home)


async def wait_deltas(sock: RoomSocket, since: int, at_least: int) -> int:
    """The reply id once `sock` has seen delta `at_least` of it."""
    frame = await sock.wait_for(
        "generation.delta", since=since, where=lambda f: int(f["seq"]) >= at_least, timeout=30
    )
    return int(frame["message_id"])


async def test_three_processes_over_two_redis_servers_keep_every_guarantee(
    daphne_factory: DaphneFactory,
    private_redis: RedisServer,
    second_redis: RedisServer,
    ws_connect: WsConnect,
    unique: Any,
) -> None:
    servers = [private_redis, second_redis]
    env = {
        "REDIS_URL": ",".join(s.url for s in servers),
        "LLM_PROVIDER": "demo",
        "DEMO_WORDS_PER_SECOND": "25",  # 60-120 words: 2.5-5 s, long enough to join and stop
        "ROOM_LOCK_TTL": "5",  # a killed process's room is freed in about 8 s, not 23
    }
    procs = [daphne_factory(env, name=name, start=False) for name in ("p1", "p2", "p3")]
    DaphneProcess.start_all(*procs)
    rooms, cookies = await make_rooms(unique, [s.url for s in servers])

    # Every room has a tab on each process, of different people.
    tabs: dict[int, list[RoomSocket]] = {}
    for r, room in enumerate(rooms):
        tabs[room.pk] = [
            await ws_connect(proc.ws_url, room.slug, cookies[(r + i) % 3])
            for i, proc in enumerate(procs)
        ]
    for socks in tabs.values():
        for sock in socks:
            await sock.wait_for("room.snapshot")

    # Each room's group lives on its own server only (channels-redis's shard).
    for room in rooms:
        home, other = server_of(room, servers)
        channel = f"{PREFIX}__group__room.{room.pk}"
        assert channel in home.client(decode_responses=True).pubsub_channels(channel), (
            room.pk,
            home,
        )
        assert not other.client(decode_responses=True).pubsub_channels(channel), (room.pk, other)

    # 1. A message in every room at once, each sent through a different process: every tab of
    #    a room gets the same deltas, joining to the finished text, which is what is stored.
    marks = {room.pk: [sock.mark() for sock in tabs[room.pk]] for room in rooms}
    for r, room in enumerate(rooms):
        await tabs[room.pk][r % 3].send({"type": "message.send", "text": f"hello room {r}"})
    for r, room in enumerate(rooms):
        views = await asyncio.gather(
            *(
                follow_reply(sock, since=mark, timeout=60)
                for sock, mark in zip(tabs[room.pk], marks[room.pk], strict=True)
            )
        )
        texts = {view.check() for view in views}
        assert len(texts) == 1 and f"hello room {r}" in texts.pop()
        reply_id = views[0].message_id
        assert reply_id is not None
        assert len({tuple(deltas(sock, reply_id)) for sock in tabs[room.pk]}) == 1
        stored = await Message.objects.aget(pk=reply_id)
        assert (stored.status, stored.text) == ("complete", views[0].finished["text"])  # type: ignore[index]

    # 2. Late join: a new tab on another process mid-reply gets the text so far in its
    #    snapshot, then the rest live, without loss or duplication. Meanwhile the room's live
    #    state sits on its group's server and nowhere else.
    late_room = rooms[1]  # on the second server, where only sharding puts its state
    assert server_of(late_room, servers)[0] is second_redis
    first, second, _ = tabs[late_room.pk]
    mark = second.mark()
    await first.send({"type": "message.send", "text": "a long answer please"})
    reply_id = await wait_deltas(second, mark, 3)
    home, other = server_of(late_room, servers)
    pattern = f"{PREFIX}:room:{late_room.pk}:*"
    assert home.client().keys(pattern), (pattern, home)
    assert not other.client().keys(pattern), (pattern, other)
    late = await ws_connect(procs[2].ws_url, late_room.slug, cookies[2])
    snapshot = await late.wait_for("room.snapshot")
    assert snapshot["generation"]["message_id"] == reply_id and snapshot["generation"]["seq"] >= 3
    late_view, second_view = await asyncio.gather(
        follow_reply(late, reply_id, timeout=60), follow_reply(second, reply_id, since=mark)
    )
    assert late_view.check() == second_view.check()
    assert late_view.base_seq >= 3  # it really joined mid-reply

    # 3. Stop from another process: the reply runs where it was asked for (p1); a tab on p3
    #    stops it; every tab sees it stopped with the same text, and that text is stored.
    stop_room = rooms[0]
    asker, _, stopper = tabs[stop_room.pk]
    marks_stop = [sock.mark() for sock in tabs[stop_room.pk]]
    await asker.send({"type": "message.send", "text": "stop me midway"})
    reply_id = await wait_deltas(stopper, marks_stop[2], 2)
    await stopper.send({"type": "generation.stop", "message_id": reply_id})
    views = await asyncio.gather(
        *(
            follow_reply(sock, reply_id, since=m, timeout=30)
            for sock, m in zip(tabs[stop_room.pk], marks_stop, strict=True)
        )
    )
    assert {view.finished["status"] for view in views if view.finished} == {"stopped"}
    assert len({view.check() for view in views}) == 1
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text) == ("stopped", views[0].finished["text"])  # type: ignore[index]

    # 4. A process killed mid-reply (SIGKILL: no goodbye): the others' tabs see it end
    #    `interrupted` with the text so far, the room is freed in time, the next message is
    #    answered.
    kill_room = rooms[2]
    on_p1, on_p2, on_p3 = tabs[kill_room.pk]
    since = [on_p1.mark(), on_p3.mark()]
    await on_p2.send({"type": "message.send", "text": "a reply that dies with its process"})
    reply_id = await wait_deltas(on_p1, since[0], 3)
    killed = time.monotonic()
    procs[1].kill()
    survivors = await asyncio.gather(
        follow_reply(on_p1, reply_id, since=since[0], timeout=SPEC_DEADLINE + 5, silence_sync=None),
        follow_reply(on_p3, reply_id, since=since[1], timeout=SPEC_DEADLINE + 5, silence_sync=None),
    )
    freed_after = time.monotonic() - killed
    for view in survivors:
        assert view.finished is not None and view.finished["status"] == "interrupted"
    text = survivors[0].check(allow_gaps=True)
    assert survivors[1].check(allow_gaps=True) == text and text
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text) == ("interrupted", text)
    assert freed_after < SPEC_DEADLINE, f"room freed after {freed_after:.1f} s"

    mark = on_p3.mark()
    await on_p3.send({"type": "message.send", "text": "anyone left?"})
    after = await follow_reply(on_p3, since=mark, timeout=60)
    assert after.finished is not None and after.finished["status"] == "complete"
    assert "anyone left?" in after.check()
    # The other rooms never noticed: their tabs on the survivors are still open.
    for room in rooms:
        for sock in (tabs[room.pk][0], tabs[room.pk][2]):
            assert not sock.closed, (room.slug, sock)
    print(f"\nkilled mid-reply: room freed after {freed_after:.1f} s")
