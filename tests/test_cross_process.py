"""Two real daphne processes sharing one private Redis and the test database, with the real
`anthropic` SDK talking to the fake Anthropic API: what SPEC §6 promises across processes.

Layout in every test: process A runs the reply (the message is sent there), process B serves
the other tabs. Each test has its own room and users (`unique`), since Redis state outlives a
test. Nothing sleeps for a fixed time except the idle test's idle period itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.rooms.models import Message, Room
from tests.conftest import DaphneFactory, DaphnePair, WsConnect
from tests.fakes import Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support import unique_name
from tests.support.auth import create_user, session_cookie
from tests.support.daphne import DaphneProcess
from tests.support.people import join, make_people
from tests.support.wsclient import HandshakeRejected, RoomSocket, follow_reply

pytestmark = pytest.mark.timeout(60)

MODEL = "claude-sonnet-5-5"
USAGE_KEYS = {
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
}


def words(prefix: str, count: int) -> list[str]:
    """`count` distinct chunks, so any lost, repeated or reordered delta shows in the text."""
    return [f"{prefix}{i} " for i in range(count)]


# --- set-up helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    """The session's server environment with this module's own Redis key prefix: locks,
    presence, rate limits and the circuit breaker other modules leave behind stay theirs."""
    return MappingProxyType({**server_env, "REDIS_KEY_PREFIX": unique_name("xproc")})


async def wait_presence(sock: RoomSocket, users: list[str], timeout: float = 10.0) -> None:
    """Until this tab's newest presence frame lists exactly `users`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        latest = sock.find("presence")
        if latest and latest[-1]["users"] == users:
            return
        try:
            await sock.next_frame_after(sock.mark(), deadline)
        except TimeoutError:
            seen = [f["users"] for f in latest]
            raise AssertionError(f"presence never became {users}; saw {seen}") from None


def deltas(sock: RoomSocket, message_id: int) -> list[tuple[int, str]]:
    return [(f["seq"], f["text"]) for f in sock.find("generation.delta", message_id=message_id)]


def joined(sock: RoomSocket, message_id: int) -> str:
    return "".join(text for _, text in deltas(sock, message_id))


def assert_numbered(sock: RoomSocket, message_id: int) -> None:
    seqs = [seq for seq, _ in deltas(sock, message_id)]
    assert seqs == list(range(1, len(seqs) + 1)), f"{sock.url}: seqs {seqs}"


def user_texts_after_last_reply(body: dict[str, Any] | None) -> str:
    """The user turns a request asks the model to answer (everything after the last reply)."""
    assert body is not None, "the model got a request without a JSON body"
    turns = body["messages"]
    last_assistant = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=-1)
    return json.dumps(turns[last_assistant + 1 :])


def message_text_is(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["message"]["text"] == text


@sync_to_async
def room_messages(room: Room) -> list[Message]:
    return list(Message.objects.filter(room=room).order_by("id"))


# --- the shared stream ----------------------------------------------------------------------------


async def test_every_tab_on_both_processes_gets_the_same_numbered_stream(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    chunks = words("w", 30)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.01, input_tokens=123))
    p = await make_people(unique, title="Cross")
    a1 = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    a2 = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    b = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.bob_cookie)
    tabs = [a1, a2, b]
    marks = [tab.mark() for tab in tabs]

    await a1.send({"type": "message.send", "text": "hello from A", "client_msg_id": "c-1"})

    created = [
        await t.wait_for("message.created", since=m) for t, m in zip(tabs, marks, strict=True)
    ]
    started = [
        await t.wait_for("generation.started", since=m) for t, m in zip(tabs, marks, strict=True)
    ]
    finished = [
        await t.wait_for("generation.finished", since=m) for t, m in zip(tabs, marks, strict=True)
    ]
    assert created[0] == created[1] == created[2]
    message = created[0]["message"]
    assert (message["role"], message["author"], message["text"]) == (
        "user",
        p.alice,
        "hello from A",
    )
    assert message["client_msg_id"] == "c-1" and message["status"] == "complete"
    assert (
        started[0]
        == started[1]
        == started[2]
        == {
            "type": "generation.started",
            "message_id": started[0]["message_id"],
            "model": MODEL,
        }
    )
    assert finished[0] == finished[1] == finished[2]
    reply_id = started[0]["message_id"]
    assert reply_id > message["id"]

    # Identical delta frames, numbered 1..n with no gap, on every tab of either process.
    assert deltas(a1, reply_id) == deltas(a2, reply_id) == deltas(b, reply_id)
    for tab in tabs:
        assert_numbered(tab, reply_id)
        # In order: created, started, the deltas, finished (nothing after finished belongs to it).
        order = [
            f["type"]
            for f in tab.frames
            if f.get("message_id") == reply_id or f["type"] == "message.created"
        ]
        assert order[:2] == ["message.created", "generation.started"]
        assert order[-1] == "generation.finished" and order.count("generation.finished") == 1
    fin = finished[0]
    assert joined(b, reply_id) == fin["text"] == "".join(chunks)
    assert fin["status"] == "complete" and fin["stop_reason"] == "end_turn"
    assert fin["error"] is None
    assert set(fin["usage"]) == USAGE_KEYS
    assert fin["usage"]["input_tokens"] == 123 and fin["usage"]["output_tokens"] == len(chunks)

    stored = await Message.objects.aget(pk=reply_id)
    assert stored.text == fin["text"] and stored.status == "complete"
    assert stored.role == "assistant" and stored.model == MODEL
    assert (stored.input_tokens, stored.output_tokens) == (123, len(chunks))
    assert stored.stop_reason == "end_turn"
    # The model was asked once, with alice's message.
    [request] = fake_anthropic.requests
    assert "hello from A" in user_texts_after_last_reply(request.body)


async def test_a_tab_joining_mid_reply_on_the_other_process_rebuilds_the_exact_text(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    chunks = words("m", 80)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.03))
    p = await make_people(unique, title="Cross")
    a = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    await a.send({"type": "message.send", "text": "a long one please"})
    started = await a.wait_for("generation.started")
    reply_id = started["message_id"]
    await a.wait_for("generation.delta", message_id=reply_id, where=lambda f: f["seq"] >= 3)

    b = await ws_connect(daphne_pair.b.ws_url, p.slug, p.bob_cookie)
    snapshot = await b.wait_for("room.snapshot")
    generation = snapshot["generation"]
    assert generation is not None, "the reply ended before the tab joined: make it longer"
    assert generation["message_id"] == reply_id and generation["seq"] >= 3
    [streaming] = [m for m in snapshot["messages"] if m["id"] == reply_id]
    assert streaming["status"] == "streaming" and streaming["role"] == "assistant"
    assert streaming["text"] == generation["text"]

    view = await follow_reply(b, reply_id, since=0, heal=False, silence_sync=None)
    final = view.check()  # snapshot text + deltas with seq > snapshot seq == finished.text
    assert view.syncs_sent == 0 and view.gaps == 0 and view.snapshots == 1
    assert final == "".join(chunks)
    # The snapshot holds exactly deltas 1..seq as the runner's own process sent them.
    fin_a = await a.wait_for("generation.finished", message_id=reply_id)
    assert fin_a == view.finished
    a_deltas = deltas(a, reply_id)
    assert generation["text"] == "".join(t for s, t in a_deltas if s <= generation["seq"])
    # B's live deltas past the snapshot continue at seq+1 with no gap, equal to A's.
    later = [(s, t) for s, t in deltas(b, reply_id) if s > generation["seq"]]
    assert later == [(s, t) for s, t in a_deltas if s > generation["seq"]]
    assert [s for s, _ in later] == list(range(generation["seq"] + 1, len(a_deltas) + 1))
    stored = await Message.objects.aget(pk=reply_id)
    assert stored.text == final and stored.status == "complete"


async def test_stop_on_one_process_ends_the_reply_running_on_the_other(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    chunks = words("s", 400)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.02))
    p = await make_people(unique, title="Cross")
    a = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    b = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.bob_cookie)
    await a.send({"type": "message.send", "text": "talk for a while"})
    started = await b.wait_for("generation.started")
    reply_id = started["message_id"]
    await b.wait_for("generation.delta", message_id=reply_id, where=lambda f: f["seq"] >= 3)

    await b.send({"type": "generation.stop", "message_id": reply_id})

    fins = [await tab.wait_for("generation.finished", message_id=reply_id) for tab in (a, b)]
    assert fins[0] == fins[1]
    fin = fins[0]
    assert fin["status"] == "stopped" and fin["stop_reason"] is None and fin["error"] is None
    assert 0 < len(fin["text"]) < len("".join(chunks))
    assert "".join(chunks).startswith(fin["text"])
    for tab in (a, b):
        assert_numbered(tab, reply_id)
        assert joined(tab, reply_id) == fin["text"]
    stored = await Message.objects.aget(pk=reply_id)
    assert stored.status == "stopped" and stored.text == fin["text"]


async def test_closing_the_asking_tab_does_not_end_the_reply(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    chunks = words("c", 40)
    fake_anthropic.queue(Reply(chunks=chunks, delay=0.02))
    p = await make_people(unique, title="Cross")
    asker = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    other_a = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    b = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.bob_cookie)
    await asker.send({"type": "message.send", "text": "answer even if I leave"})
    started = await asker.wait_for("generation.started")
    reply_id = started["message_id"]
    await asker.wait_for("generation.delta", message_id=reply_id)
    await asker.close()

    for tab in (other_a, b):
        fin = await tab.wait_for("generation.finished", message_id=reply_id)
        assert fin["status"] == "complete" and fin["text"] == "".join(chunks)
        assert_numbered(tab, reply_id)
        assert joined(tab, reply_id) == fin["text"]
    stored = await Message.objects.aget(pk=reply_id)
    assert stored.status == "complete" and stored.text == "".join(chunks)


# --- one message, one reply ------------------------------------------------------------------------


async def test_a_repeated_client_msg_id_posts_once_even_on_the_other_process(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique, title="Cross")
    on_a = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    on_b = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.alice_cookie)
    watcher = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.bob_cookie)
    tabs = (on_a, on_b, watcher)
    await asyncio.gather(*(tab.settle() for tab in tabs))  # the joins' presence announcements

    await on_a.send({"type": "message.send", "text": "once", "client_msg_id": "dup-1"})
    for tab in tabs:
        await tab.wait_for("generation.finished")
    assert len(fake_anthropic.requests) == 1

    # The repeat, with other text, from alice's tab on the other process.
    marks = [tab.mark() for tab in tabs]
    await on_b.send({"type": "message.send", "text": "twice?", "client_msg_id": "dup-1"})
    # A socket's frames are handled in order: the snapshot answers after the repeat was handled.
    await on_b.send({"type": "sync"})
    snapshot = await on_b.wait_for("room.snapshot", since=marks[1])
    users = [m for m in snapshot["messages"] if m["role"] == "user"]
    assert [(m["text"], m["client_msg_id"]) for m in users] == [("once", "dup-1")]
    await asyncio.gather(
        *(
            tab.expect_silence(1.0, since=mark, where=lambda f: f["type"] != "room.snapshot")
            for tab, mark in zip(tabs, marks, strict=True)
        )
    )
    assert len(fake_anthropic.requests) == 1

    # The same new id sent on both processes at once: one is stored, the other is a repeat.
    marks = [tab.mark() for tab in tabs]
    await asyncio.gather(
        on_a.send({"type": "message.send", "text": "race A", "client_msg_id": "dup-2"}),
        on_b.send({"type": "message.send", "text": "race B", "client_msg_id": "dup-2"}),
    )
    created = await watcher.wait_for("message.created", since=marks[2])
    for tab, mark in zip(tabs, marks, strict=True):
        await tab.wait_for("generation.finished", since=mark)
    await asyncio.gather(*(tab.expect_silence(0.5) for tab in tabs))
    for tab, mark in zip(tabs, marks, strict=True):
        assert len(tab.find("message.created", since=mark)) == 1
        assert len(tab.find("generation.started", since=mark)) == 1
        assert tab.find("error", since=mark) == []
    rows = await room_messages(p.room)
    user_rows = [(m.text, m.client_msg_id) for m in rows if m.role == "user"]
    assert user_rows == [("once", "dup-1"), (created["message"]["text"], "dup-2")]
    assert [m.role for m in rows] == ["user", "assistant", "user", "assistant"]
    assert len(fake_anthropic.requests) == 2


async def test_one_reply_per_room_across_processes_answers_what_came_meanwhile(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    first_chunks = words("f", 60)
    fake_anthropic.queue(Reply(chunks=first_chunks, delay=0.03), Reply(chunks=["both ", "seen."]))
    p = await make_people(unique, title="Cross")
    a = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    b = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.bob_cookie)

    await a.send({"type": "message.send", "text": "first question"})
    first = await a.wait_for("generation.started")
    await b.wait_for("generation.delta", message_id=first["message_id"])
    # While it streams, a message on each process.
    await asyncio.gather(
        a.send({"type": "message.send", "text": "meanwhile on A"}),
        b.send({"type": "message.send", "text": "meanwhile on B"}),
    )
    for tab in (a, b):
        for text in ("meanwhile on A", "meanwhile on B"):
            await tab.wait_for("message.created", since=0, where=message_text_is(text))
    assert not a.find("generation.finished"), "the first reply ended too soon to test this"
    assert len(fake_anthropic.requests) == 1  # B's message did not start a reply beside A's

    first_id = first["message_id"]
    for tab in (a, b):
        await tab.wait_for("generation.finished", message_id=first_id, since=0)
        second = await tab.wait_for(
            "generation.started", since=0, where=lambda f: f["message_id"] != first_id
        )
        fin = await tab.wait_for("generation.finished", message_id=second["message_id"], since=0)
        assert fin["status"] == "complete" and fin["text"] == "both seen."
    # Exactly two replies, strictly one after the other on every tab, and nothing more.
    await a.expect_silence(0.5, "generation.started")
    for tab in (a, b):
        kinds = [
            f["type"]
            for f in tab.frames
            if f["type"] in ("generation.started", "generation.finished")
        ]
        assert kinds == ["generation.started", "generation.finished"] * 2
    requests = fake_anthropic.requests
    assert len(requests) == 2
    asked = user_texts_after_last_reply(requests[1].body)
    assert "meanwhile on A" in asked and "meanwhile on B" in asked
    assert "first question" not in asked
    rows = await room_messages(p.room)
    assert [m.role for m in rows] == ["user", "assistant", "user", "user", "assistant"]
    assert all(m.status == "complete" for m in rows)


# --- presence and idle sockets ---------------------------------------------------------------------


async def test_presence_is_shared_across_processes(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique, title="Cross")
    alice_a = await ws_connect(daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    await alice_a.wait_for("room.snapshot")
    assert (await alice_a.wait_for("presence"))["users"] == [p.alice]

    bob_b = await ws_connect(daphne_pair.b.ws_url, p.slug, p.bob_cookie)
    await bob_b.wait_for("room.snapshot")
    assert (await bob_b.wait_for("presence"))["users"] == [p.alice, p.bob]
    await wait_presence(alice_a, [p.alice, p.bob])

    # A second tab of alice's, on B, changes nothing: usernames are de-duplicated.
    alice_b = await ws_connect(daphne_pair.b.ws_url, p.slug, p.alice_cookie)
    await alice_b.wait_for("room.snapshot")
    assert (await alice_b.wait_for("presence"))["users"] == [p.alice, p.bob]
    await alice_b.close()

    await bob_b.close()
    await wait_presence(alice_a, [p.alice])
    # Every presence alice saw was sorted and free of repeats.
    for frame in alice_a.find("presence"):
        assert frame["users"] == sorted(set(frame["users"]))


@sync_to_async
def crowd_cookies(unique: Any, count: int) -> list[tuple[str, str]]:
    """(username, sessionid) of `count` new people."""
    people = [create_user(unique("guest"), password=None) for _ in range(count)]
    return [(user.username, session_cookie(user)) for user in people]


async def test_a_crowd_joining_at_once_on_both_processes_converges_in_few_frames(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique, title="Crowd")
    alice_a = await join(ws_connect, daphne_pair.a.ws_url, p.slug, p.alice_cookie)
    first_seen = alice_a.mark()
    crowd = await crowd_cookies(unique, 12)
    # Everyone at the same moment, alternating processes: the announcements race each other.
    tabs = await asyncio.gather(
        *(
            join(ws_connect, (daphne_pair.a, daphne_pair.b)[i % 2].ws_url, p.slug, cookie)
            for i, (_, cookie) in enumerate(crowd)
        )
    )
    everyone = sorted([p.alice, *(name for name, _ in crowd)])
    for tab in [alice_a, *tabs]:
        await wait_presence(tab, everyone)
    # One frame per join would be 12 for alice; announcements are debounced per process.
    heard = [f for f in alice_a.frames[first_seen:] if f["type"] == "presence"]
    assert len(heard) < len(crowd), [f["users"] for f in heard]


async def test_a_socket_idle_well_past_five_seconds_still_gets_the_next_reply(
    daphne_pair: DaphnePair,
    daphne_factory: DaphneFactory,
    fake_anthropic: FakeAnthropic,
    ws_connect: WsConnect,
    unique: Any,
) -> None:
    """redis-py 8's 5 s socket_timeout killed idle channel-layer reads (NOTES, traps).

    Both channel layers the settings offer: the default pair (`pubsub`) and a second pair on
    channels_redis' list-based `core` layer, whose 5 s BZPOPMIN is where the trap bites. With a
    5 s socket timeout every socket of the `core` pair closes with 1011 here.
    """
    core = [
        daphne_factory({"REDIS_CHANNEL_LAYER": "core"}, name=f"core-{n}", start=False) for n in "ab"
    ]
    DaphneProcess.start_all(*core)
    rooms = []
    for first, second in (tuple(daphne_pair), core):
        p = await make_people(unique, title="Cross")
        a = await join(ws_connect, first.ws_url, p.slug, p.alice_cookie)
        b = await join(ws_connect, second.ws_url, p.slug, p.bob_cookie)
        await wait_presence(a, [p.alice, p.bob])
        rooms.append((a, b))

    await asyncio.sleep(8)  # the idle period under test: no frame either way

    for a, b in rooms:
        assert not a.closed and not b.closed, (a.url, a.close_code, b.url, b.close_code)

    async def reply_reaches_both(sender: RoomSocket, tabs: tuple[RoomSocket, RoomSocket]) -> None:
        marks = [tab.mark() for tab in tabs]
        await sender.send({"type": "message.send", "text": "still there?"})
        for tab, mark in zip(tabs, marks, strict=True):
            view = await follow_reply(tab, since=mark, timeout=15, heal=False, silence_sync=None)
            view.check()
            assert view.finished is not None and view.finished["status"] == "complete"

    # The runner on the second process first (its tab was idle too), then on the first.
    await asyncio.gather(*(reply_reaches_both(b, (a, b)) for a, b in rooms))
    await asyncio.gather(*(reply_reaches_both(a, (a, b)) for a, b in rooms))


# --- refusals through the real server ------------------------------------------------------------


async def test_refusals_at_the_handshake_and_with_close_codes(
    daphne_pair: DaphnePair, ws_connect: WsConnect, unique: Any
) -> None:
    p = await make_people(unique, title="Cross")
    private = await sync_to_async(Room.objects.create)(
        slug=unique("private"), title="Private", owner=p.room.owner, model=MODEL, is_private=True
    )
    for server in daphne_pair:
        # A foreign or missing Origin: HTTP 403 at the handshake, before any websocket exists.
        for origin in ("http://evil.example", None):
            with pytest.raises(HandshakeRejected) as refused:
                await ws_connect(server.ws_url, p.slug, p.alice_cookie, origin=origin)
            assert refused.value.status == 403, origin

        # Accepted, then closed with a code the page can read; no frame before the close.
        cases = [
            (p.slug, None, 4401),  # not signed in
            (p.slug, "not-a-session", 4401),  # a stale cookie is not a user
            (unique("nowhere"), p.alice_cookie, 4404),  # no such room
            (private.slug, p.bob_cookie, 4403),  # someone else's private room
            ("Not-A-Slug", p.alice_cookie, 4404),  # no room can have this slug
            ("x" * 51, p.alice_cookie, 4404),
            ("Not-A-Slug", None, 4401),
        ]
        for slug, cookie, code in cases:
            sock = await ws_connect(server.ws_url, slug, cookie)
            assert await sock.wait_closed() == code, (server.name, slug, cookie)
            assert sock.frames == [] and sock.bad_frames == []

        # The owner of the private room is let in.
        owner = await ws_connect(server.ws_url, private.slug, p.alice_cookie)
        snapshot = await owner.wait_for("room.snapshot")
        assert snapshot["room"]["slug"] == private.slug
        await owner.close()
