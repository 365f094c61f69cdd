"""When Redis goes away: killed mid-conversation and restarted empty (it keeps nothing here),
with either channel layer; a socket idle past redis-py's old 5 s timeout; group memberships
that expire (docs/operations.md "Redis").

Every test has its own redis-server (`private_redis`), never the session's or the machine's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from chatsite.asgi import application
from chatsite.rooms.models import Message, Room
from consumers import current
from consumers.broadcast import room_group
from consumers.layer_probe import rejoin_interval
from consumers.process import ProcessConfig, RoomchatProcess
from tests.conftest import DaphneFactory, WsConnect
from tests.consumer_fixtures import stop_process
from tests.fakes import Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support import unique_name
from tests.support.auth import session_cookie
from tests.support.daphne import DaphneProcess, http_status
from tests.support.people import join, make_people
from tests.support.redis_server import RedisServer
from tests.support.wsclient import RoomSocket, follow_reply

pytestmark = pytest.mark.timeout(90)

MODEL = "claude-sonnet-5-5"
RECOVERY_DEADLINE = 10.0  # seconds from Redis's return until the room works again


def words(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i} " for i in range(count)]


async def health(process: DaphneProcess) -> int:
    status, _ = await asyncio.to_thread(http_status, f"{process.url}/healthz")
    return status


async def health_becomes(process: DaphneProcess, status: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (seen := await health(process)) != status:
        assert loop.time() < deadline, f"/healthz of {process.name} stayed {seen}, not {status}"
        await asyncio.sleep(0.1)


async def ask(sock: RoomSocket, text: str, timeout: float = 15.0) -> dict[str, Any]:
    """Send a message from this tab; the reply's generation.finished as this tab saw it."""
    since = sock.mark()
    await sock.send({"type": "message.send", "text": text})
    reply_id = (await sock.wait_for("generation.started", since=since, timeout=timeout))[
        "message_id"
    ]
    return await sock.wait_for(
        "generation.finished", since=since, message_id=reply_id, timeout=timeout
    )


async def wait_stored(text: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await Message.objects.filter(text=text).aexists():
            await asyncio.sleep(0.05)


# --- a Redis restart mid-conversation --------------------------------------------------------


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_redis_killed_and_restarted_mid_reply_recovers_without_restarting_daphne(
    daphne_factory: DaphneFactory,
    private_redis: RedisServer,
    fake_anthropic: FakeAnthropic,
    ws_connect: WsConnect,
    unique: Any,
    layer: str,
) -> None:
    env = {"REDIS_URL": private_redis.url, "REDIS_CHANNEL_LAYER": layer}
    a, b = (daphne_factory(env, name=name, start=False) for name in ("a", "b"))
    DaphneProcess.start_all(a, b)
    logs = {process.name: process.log_size() for process in (a, b)}
    p = await make_people(unique, title="Outage")
    tab_a = await join(ws_connect, a.ws_url, p.slug, p.alice_cookie)
    tab_b = await join(ws_connect, b.ws_url, p.slug, p.bob_cookie)

    # Settle presence first: each process announces the arrivals it saw, a moment later.
    await tab_a.wait_for("presence", where=lambda f: p.bob in f["users"])
    await asyncio.gather(tab_a.settle(), tab_b.settle())
    if layer == "core":
        # The idle-socket trap (NOTES): channels_redis blocks in BZPOPMIN for 5 s, which a
        # 5 s socket timeout turns into a dead consumer. Sockets idle well past it stay open.
        await asyncio.gather(tab_a.expect_silence(7), tab_b.expect_silence(7))
        assert not tab_a.closed and not tab_b.closed
    fake_anthropic.queue(Reply(chunks=["before"]))
    assert (await ask(tab_b, "warm-up"))["text"] == "before"

    # A slow reply runs on A; bob on B follows it. About 20 s: long enough that B's reaper
    # would interrupt it if A did not take its lost lock back after the restart.
    chunks = words("s", 650)
    fake_anthropic.queue(
        Reply(chunks=chunks, delay=0.03), Reply(chunks=["answered ", "after ", "the ", "outage"])
    )
    since_b = tab_b.mark()
    await tab_a.send({"type": "message.send", "text": "a long one"})
    reply_id = (await tab_b.wait_for("generation.started", since=since_b))["message_id"]
    await tab_b.wait_for(
        "generation.delta", since=since_b, message_id=reply_id, where=lambda f: f["seq"] >= 3
    )

    before_outage = [(tab_a, tab_a.mark()), (tab_b, tab_b.mark())]
    private_redis.kill()
    for process in (a, b):
        down = time.monotonic()
        status, body = await asyncio.to_thread(http_status, f"{process.url}/healthz")
        assert time.monotonic() - down < 2.5  # never hangs past its own 2 s check timeout
        assert status == 503, body
        assert json.loads(body)["checks"]["channel_layer"].startswith("error")
    # Bob writes while Redis is away: stored (nobody hears of it yet), answered later.
    outage_text = "sent while Redis was away"
    await tab_b.send({"type": "message.send", "text": outage_text, "client_msg_id": "outage"})
    await wait_stored(outage_text)
    private_redis.start()  # same port, no data: memberships, locks, live text are gone
    back = time.monotonic()

    # Every tab is resynchronised (a fresh snapshot) and the reply reaches both, whole.
    for tab, mark in before_outage:
        await tab.wait_for("room.snapshot", since=mark, timeout=RECOVERY_DEADLINE)
    resynced_in = time.monotonic() - back
    view = await follow_reply(tab_b, reply_id, since=since_b, timeout=30)
    text = view.check(allow_gaps=True)  # gaps are allowed while Redis was away, not holes
    assert view.text == text == "".join(chunks)
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text) == ("complete", text)
    assert await Message.objects.filter(room=p.room, status="interrupted").acount() == 0

    # The message bob wrote during the outage gets its reply once the long one has ended.
    after_outage = await tab_b.wait_for(
        "generation.started", since=since_b, where=lambda f: f["message_id"] != reply_id
    )
    answer = await tab_b.wait_for(
        "generation.finished", since=since_b, message_id=after_outage["message_id"]
    )
    assert (answer["status"], answer["text"]) == ("complete", "answered after the outage")
    request_body = fake_anthropic.requests[-1].body
    assert request_body is not None
    assert outage_text in json.dumps(request_body["messages"][-1])

    # The room works again from either side, without restarting daphne.
    for process in (a, b):
        await health_becomes(process, 200, timeout=RECOVERY_DEADLINE)
    fake_anthropic.queue(Reply(chunks=["after ", "the ", "restart"]))
    since_a = tab_a.mark()
    asked = time.monotonic()
    finished = await ask(tab_b, "still there?")
    assert (finished["status"], finished["text"]) == ("complete", "after the restart")
    assert (await tab_a.wait_for("generation.finished", since=since_a))["text"] == finished["text"]
    answered_in = time.monotonic() - asked
    assert resynced_in < RECOVERY_DEADLINE, f"tabs resynchronised after {resynced_in:.1f} s"
    assert answered_in < RECOVERY_DEADLINE, f"the next message took {answered_in:.1f} s"
    assert not tab_a.closed and not tab_b.closed
    assert a.pid is not None and a.running and b.running
    for process in (a, b):
        log = process.log_since(logs[process.name])
        # (Whether a process saw Redis down depends on when its watcher looked.)
        assert "lost its data" in log and "recovered from the Redis outage" in log
        assert "Exception inside application" not in log
    print(
        f"\n{layer}: tabs resynchronised {resynced_in:.1f} s after Redis came back; "
        f"next message answered on both processes in {answered_in:.2f} s"
    )


# --- group memberships that expire (core layer) ----------------------------------------------


@pytest.fixture
async def core_layer_process(
    settings: Any, private_redis: RedisServer
) -> AsyncIterator[RedisServer]:
    """This test process as a server on the core layer whose memberships expire after 2 s."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": private_redis.url, **settings.REDIS_OPTIONS}],
                "prefix": unique_name("expiry"),
                "group_expiry": 2,
            },
        }
    }
    channel_layers.backends = {}
    process = RoomchatProcess(ProcessConfig.from_settings())
    current.install(process)
    process.start()
    yield private_redis
    await stop_process(process)
    current.install(None)
    channel_layers.backends = {}


@pytest.mark.django_db(transaction=True)
async def test_group_memberships_are_renewed_before_they_expire(
    core_layer_process: RedisServer,
) -> None:
    """A socket connected longer than `group_expiry` (24 h in production) keeps receiving."""

    @sync_to_async
    def room_and_cookie() -> tuple[Room, str]:
        user = User.objects.create_user(unique_name("idle"), password=None)
        room = Room.objects.create(slug=unique_name("room"), title="Long", owner=user)
        return room, session_cookie(user)

    room, cookie = await room_and_cookie()
    headers = [(b"origin", b"http://127.0.0.1"), (b"cookie", f"sessionid={cookie}".encode())]
    comm = WebsocketCommunicator(application, f"/ws/rooms/{room.slug}/", headers=headers)
    assert (await comm.connect(timeout=10))[0]
    try:
        assert json.loads(await comm.receive_from(10))["type"] == "room.snapshot"
        assert json.loads(await comm.receive_from(10))["type"] == "presence"
        assert rejoin_interval() == 1.0  # a quarter of the expiry, at least 1 s
        joined = time.monotonic()
        # Wait until the first membership has long expired (the scenario is time passing).
        await asyncio.sleep(2 * 2 + 0.5 - (time.monotonic() - joined))
        layer = get_channel_layer()
        assert layer is not None
        await layer.group_send(
            room_group(room.pk), {"type": "room.broadcast", "frame": '{"type":"probe"}'}
        )
        # The room's debounced `presence` announcement of this join may come first.
        async with asyncio.timeout(5):
            frame = json.loads(await comm.receive_from(5))
            while frame["type"] == "presence":
                frame = json.loads(await comm.receive_from(5))
        assert frame == {"type": "probe"}
    finally:
        await comm.disconnect(timeout=2)
