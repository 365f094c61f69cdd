"""When a server process goes away (SIGTERM, SIGKILL) or a client stops reading.

SPEC §6 Guarantees: a reply whose process dies is stored as `interrupted` with the text streamed
so far, the room is told and freed within 30 s, and a message nobody answered gets its reply
from a surviving process. A slow client never slows a room down for the others.

Each test starts its own daphne processes (they get killed), sharing the session's Redis, the
test database and the fake Anthropic API.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from chatsite.conversation.models import ReplyDecision
from chatsite.rooms.models import Message, Room
from chatsite.usage.models import UsageEntry
from tests.conftest import DaphneFactory, WsConnect
from tests.fakes import Fail, Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support.daphne import DaphneProcess
from tests.support.people import join, make_people
from tests.support.redis_server import RedisServer
from tests.support.wsclient import RoomSocket, follow_reply

pytestmark = pytest.mark.timeout(90)

MODEL = "claude-sonnet-5-5"
SPEC_DEADLINE = 30.0  # seconds: shutdown, and a dead process's room freed (SPEC §6)


def words(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i} " for i in range(count)]


def start_pair(factory: DaphneFactory, env: dict[str, str] | None = None) -> list[DaphneProcess]:
    processes = [factory(env, name=name, start=False) for name in ("a", "b")]
    DaphneProcess.start_all(*processes)
    return processes


async def exited_within(process: DaphneProcess, timeout: float) -> tuple[int, float]:
    """Wait (off the event loop) for the process to exit: its exit code and how long it took."""
    started = time.monotonic()
    code = await asyncio.to_thread(process.wait, timeout)
    return code, time.monotonic() - started


async def running_reply(
    fake: FakeAnthropic, a: RoomSocket, b: RoomSocket, chunks: list[str], delay: float
) -> tuple[int, int]:
    """Start a slow reply from alice's tab on A; return its id and bob's mark once bob has
    seen a few deltas of it on B."""
    fake.queue(Reply(chunks=chunks, delay=delay))
    since = b.mark()
    await a.send({"type": "message.send", "text": "tell me a long story"})
    reply_id = (await b.wait_for("generation.started", since=since))["message_id"]
    await b.wait_for("generation.delta", since=since, message_id=reply_id, where=_seq_at_least(3))
    return reply_id, since


def _seq_at_least(seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: int(frame["seq"]) >= seq


# --- SIGTERM --------------------------------------------------------------------------------


async def test_sigterm_interrupts_the_reply_for_every_tab_and_a_survivor_answers_the_rest(
    daphne_factory: DaphneFactory, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    a, b = start_pair(daphne_factory)
    p = await make_people(unique, title="Crash")
    tab_a = await join(ws_connect, a.ws_url, p.slug, p.alice_cookie)
    tab_b = await join(ws_connect, b.ws_url, p.slug, p.bob_cookie)
    chunks = words("long", 400)
    reply_id, since = await running_reply(fake_anthropic, tab_a, tab_b, chunks, 0.02)
    # Bob writes while A's reply runs: nobody answers that until the reply ends.
    fake_anthropic.queue(Reply(chunks=["answered ", "by ", "B"]))
    await tab_b.send({"type": "message.send", "text": "and then?"})
    await tab_b.wait_for(
        "message.created", since=since, where=lambda f: f["message"]["author"] == p.bob
    )

    log_offset = a.log_size()
    terminated = time.monotonic()
    a.terminate()
    view = await follow_reply(tab_b, reply_id, since=since, timeout=SPEC_DEADLINE)
    told_after = time.monotonic() - terminated
    code, took = await exited_within(a, SPEC_DEADLINE)

    finished = view.finished
    assert finished is not None and finished["status"] == "interrupted"
    assert finished["error"] is None and finished["stop_reason"] is None
    text = view.check()  # finished.text == bob's joined deltas
    assert 0 < len(text) < len("".join(chunks))
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text) == ("interrupted", text)
    assert told_after < 5, f"B's tab learnt of the interruption after {told_after:.1f} s"
    assert took < SPEC_DEADLINE and code == 0, f"A exited with {code} after {took:.1f} s"
    assert "shutdown: interrupting 1 running replies" in a.log_since(log_offset)
    assert tab_a.closed  # A's own sockets closed with it (browsers reconnect elsewhere)

    # The room was freed at once, and B answers bob's message, which nobody had answered: B's
    # reaper looks every 3 s. A lock A had left behind would hold the room 12-15 s more.
    next_reply = await tab_b.wait_for(
        "generation.started", since=since, where=lambda f: f["message_id"] != reply_id, timeout=8
    )
    answer = await tab_b.wait_for(
        "generation.finished", since=since, message_id=next_reply["message_id"], timeout=20
    )
    assert (answer["status"], answer["text"]) == ("complete", "answered by B")
    print(f"\nSIGTERM: B told after {told_after:.2f} s; A exited after {took:.2f} s")


async def test_sigterm_while_the_cheap_model_decides_still_gets_the_message_its_reply(
    daphne_factory: DaphneFactory, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    """An `auto` room's decision in flight when A stops is stored, and B answers the "yes"."""
    a, b = start_pair(daphne_factory)
    p = await make_people(unique, title="Auto")
    await Room.objects.filter(pk=p.room.pk).aupdate(reply_mode="auto")
    tab_a = await join(ws_connect, a.ws_url, p.slug, p.alice_cookie)
    tab_b = await join(ws_connect, b.ws_url, p.slug, p.bob_cookie)
    # The cheap model takes 3 s to say yes; the reply itself comes from B after A is gone.
    fake_anthropic.queue(Reply(chunks=["yes"], first_delay=3.0), Reply(chunks=["from ", "B"]))
    since = tab_b.mark()
    await tab_a.send({"type": "message.send", "text": "what is the capital of France?"})
    created = await tab_b.wait_for("message.created", since=since)
    await fake_anthropic.await_requests(1)  # the decision is in flight on A

    a.terminate()
    code, took = await exited_within(a, SPEC_DEADLINE)
    assert code == 0 and took < SPEC_DEADLINE, f"A exited with {code} after {took:.1f} s"
    decision = await ReplyDecision.objects.aget(message_id=created["message"]["id"])
    assert decision.wanted is True

    started = await tab_b.wait_for("generation.started", since=since, timeout=20)
    answer = await tab_b.wait_for(
        "generation.finished", since=since, message_id=started["message_id"], timeout=20
    )
    assert (answer["status"], answer["text"]) == ("complete", "from B")
    assert tab_a.closed


async def test_sigterm_during_a_retry_wait_interrupts_the_reply_at_once(
    daphne_factory: DaphneFactory, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    # A's retries wait 15-30 s (the 30 s cap, jittered): far longer than a shutdown may take.
    a = daphne_factory({"LLM_RETRY_BASE_DELAY": "40"}, name="a", start=False)
    b = daphne_factory(name="b", start=False)
    DaphneProcess.start_all(a, b)
    p = await make_people(unique, title="Crash")
    tab_a = await join(ws_connect, a.ws_url, p.slug, p.alice_cookie)
    tab_b = await join(ws_connect, b.ws_url, p.slug, p.bob_cookie)
    fake_anthropic.queue(Fail(529), Reply(chunks=["never sent"]))
    since = tab_b.mark()
    await tab_a.send({"type": "message.send", "text": "are you there?"})
    retrying = await tab_b.wait_for("generation.retrying", since=since)
    assert retrying["attempt"] == 2 and retrying["retry_in"] >= 15

    terminated = time.monotonic()
    a.terminate()
    finished = await tab_b.wait_for(
        "generation.finished", since=since, message_id=retrying["message_id"], timeout=10
    )
    told_after = time.monotonic() - terminated
    code, took = await exited_within(a, SPEC_DEADLINE)
    assert (finished["status"], finished["text"], finished["error"]) == ("interrupted", "", None)
    stored = await Message.objects.aget(pk=retrying["message_id"])
    assert (stored.status, stored.text) == ("interrupted", "")
    assert told_after < 5 and took < SPEC_DEADLINE and code == 0, (told_after, took, code)
    assert len(fake_anthropic.requests) == 1  # the retry never ran


async def test_sigterm_while_redis_hangs_still_stores_the_text_and_exits_in_time(
    daphne_factory: DaphneFactory,
    fake_anthropic: FakeAnthropic,
    ws_connect: WsConnect,
    unique: Any,
    private_redis: RedisServer,
) -> None:
    a, b = start_pair(daphne_factory, {"REDIS_URL": private_redis.url})
    p = await make_people(unique, title="Crash")
    tab_a = await join(ws_connect, a.ws_url, p.slug, p.alice_cookie)
    tab_b = await join(ws_connect, b.ws_url, p.slug, p.bob_cookie)
    chunks = words("long", 400)
    reply_id, since = await running_reply(fake_anthropic, tab_a, tab_b, chunks, 0.02)
    log_offset = a.log_size()

    # Redis stops answering without closing its sockets: every call of A's hangs until its
    # socket timeout (15 s), so the normal ending (last delta, then the database) cannot finish.
    private_redis.pause()
    try:
        a.terminate()
        code, took = await exited_within(a, SPEC_DEADLINE + 5)
    finally:
        private_redis.resume()
    assert took < SPEC_DEADLINE and code == 0, f"A exited with {code} after {took:.1f} s"
    stored = await Message.objects.aget(pk=reply_id)
    seen_by_bob = "".join(f["text"] for f in tab_b.find("generation.delta", since=since))
    assert stored.status == "interrupted"
    # Everything A had of the reply: at least what reached bob, never more than the model sent.
    assert stored.text.startswith(seen_by_bob) and len(seen_by_bob) > 0
    assert "".join(chunks).startswith(stored.text)
    # Which path stored it depends on where the hang caught the ending: before its database
    # write (then the shutdown stored the text directly) or after it (clearing the live state).
    log = a.log_since(log_offset)
    assert "shutdown: interrupting 1 running replies" in log
    # Either way the reply is in the usage ledger (replies_total, spend), written before Redis.
    entry = await UsageEntry.objects.aget(message_id=reply_id)
    assert (entry.kind, entry.status) == ("reply", "interrupted")


# --- SIGKILL --------------------------------------------------------------------------------


async def test_after_sigkill_the_reaper_interrupts_the_reply_and_frees_the_room(
    daphne_factory: DaphneFactory, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    """At the default ROOM_LOCK_TTL (15 s), as production runs: the slowest path (about 23 s).
    A smaller ROOM_LOCK_TTL frees rooms sooner (3 s: about 8 s)."""
    a, b = start_pair(daphne_factory)
    p = await make_people(unique, title="Crash")
    tab_a = await join(ws_connect, a.ws_url, p.slug, p.alice_cookie)
    tab_b = await join(ws_connect, b.ws_url, p.slug, p.bob_cookie)
    chunks = words("k", 2000)
    reply_id, since = await running_reply(fake_anthropic, tab_a, tab_b, chunks, 0.02)

    killed = time.monotonic()
    a.kill()
    view = await follow_reply(
        tab_b, reply_id, since=since, timeout=SPEC_DEADLINE + 5, silence_sync=None
    )
    freed_after = time.monotonic() - killed
    finished = view.finished
    assert finished is not None and finished["status"] == "interrupted"
    # The reaper stores the live text: every delta bob saw, and possibly one that left
    # Redis's live state but not A's socket before the kill.
    text = view.check(allow_gaps=True)
    assert 0 < len(text) < len("".join(chunks))
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text) == ("interrupted", text)
    assert freed_after < SPEC_DEADLINE, f"room freed after {freed_after:.1f} s"

    # No room stays stuck: the next message is answered at once.
    fake_anthropic.queue(Reply(chunks=["alive"]))
    mark = tab_b.mark()
    await tab_b.send({"type": "message.send", "text": "still there?"})
    started = await tab_b.wait_for("generation.started", since=mark, timeout=5)
    answer = await tab_b.wait_for(
        "generation.finished", since=mark, message_id=started["message_id"]
    )
    assert (answer["status"], answer["text"]) == ("complete", "alive")
    print(f"\nSIGKILL: the reply was interrupted and the room freed after {freed_after:.1f} s")


# --- a client that stops reading ------------------------------------------------------------


def stalled_client(port: int, slug: str, cookie: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads again.

    A raw socket with a tiny receive buffer: once it is full, TCP's window closes and
    everything the server sends piles up on the server's side, as with a frozen client.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws/rooms/{slug}/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\n"
        f"Cookie: sessionid={cookie}\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: leave every frame after the headers unread
        assert chunk, "the server closed the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def drained_until_reset(sock: socket.socket, timeout: float) -> bool:
    """Read what is buffered until the server's abort shows (reset or end); False on timeout."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


async def test_a_client_that_stops_reading_is_dropped_and_slows_nobody(
    daphne_factory: DaphneFactory, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    server = daphne_factory({"WS_MAX_BACKLOG_BYTES": str(256 * 1024)})
    p = await make_people(unique, title="Crash")
    stalled = await asyncio.to_thread(stalled_client, server.port, p.slug, p.bob_cookie)
    alice = await join(ws_connect, server.ws_url, p.slug, p.alice_cookie)
    log_offset = server.log_size()
    # Replies of almost 1 MiB, each sent twice (the deltas, then generation.finished with the
    # whole text; daphne refuses frames over 1 MiB), until the kernel's buffers towards the
    # stalled client (Linux lets them grow to 4 MiB) are full and Twisted's fills past the limit.
    chunks = [f"{i:05d}" + "x" * 2042 + " " for i in range(440)]
    gaps: list[float] = []
    replies = 0
    while "its client is not reading" not in server.log_since(log_offset):
        assert replies < 6, "the stalled client was never dropped"
        replies += 1
        fake_anthropic.queue(Reply(chunks=chunks, delay=0.002))
        since = alice.mark()
        await alice.send({"type": "message.send", "text": f"flood {replies}"})
        view = await follow_reply(alice, since=since, timeout=30)
        assert view.check() == "".join(chunks)  # every frame, in order, nothing missing
        deltas = alice.find("generation.delta", since=since)
        arrivals = [alice.times[alice.frames.index(f)] for f in deltas]
        gaps.extend(later - earlier for earlier, later in itertools.pairwise(arrivals))
    # Frames leave every 20 ms; a room held up by the stalled socket would show seconds here.
    assert max(gaps) < 0.5, f"alice waited {max(gaps):.2f} s between two deltas"
    # The stalled client's connection was aborted (it sees a reset once it reads again) and it
    # left the room's presence; alice's socket is as it was.
    assert await asyncio.to_thread(drained_until_reset, stalled, 10)
    stalled.close()
    await alice.wait_for("presence", where=lambda f: p.bob not in f["users"], since=0)
    assert not alice.closed
    print(f"\nslow client dropped after {replies} replies; alice's worst gap {max(gaps):.3f} s")


async def test_the_people_of_a_killed_process_leave_the_presence_list(
    daphne_factory: DaphneFactory, ws_connect: WsConnect, unique: Any
) -> None:
    """A process that dies without a word cannot say its tabs left: their entries expire
    (PRESENCE_TTL) and a live process's refresh drops them and tells the room."""
    a, b = start_pair(daphne_factory, {"PRESENCE_TTL": "2", "PRESENCE_REFRESH": "0.5"})
    p = await make_people(unique, title="Gone")
    await join(ws_connect, a.ws_url, p.slug, p.alice_cookie)
    bob = await join(ws_connect, b.ws_url, p.slug, p.bob_cookie)
    await bob.wait_for("presence", where=lambda f: p.alice in f["users"], since=0)
    mark = bob.mark()
    killed = time.monotonic()
    a.kill()
    frame = await bob.wait_for(
        "presence", where=lambda f: p.alice not in f["users"], since=mark, timeout=10
    )
    assert frame["users"] == [p.bob]
    assert time.monotonic() - killed < 10  # PRESENCE_TTL + PRESENCE_REFRESH + the debounce
