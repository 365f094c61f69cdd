"""The room websocket at unit level: frames in, frames out, through the real ASGI application
(origin check, session auth, routing), the in-memory channel layer and the real SDK talking to
the fake Anthropic API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from chatsite.asgi import application
from chatsite.llm.demo_provider import split_words
from chatsite.rooms.models import Message, Room
from consumers.reply_runner import reply_runner
from consumers.state import shared_state
from tests.consumer_fixtures import *  # noqa: F403  (fixtures: fresh_process, alice, bob, room, connect, ...)
from tests.consumer_fixtures import TIMEOUT, Connect, Tab
from tests.fakes import Fail, Reply

pytestmark = pytest.mark.django_db(transaction=True)


async def close_code(tab: Tab) -> int:
    output = await tab.comm.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close", output
    return int(output["code"])


# --- admission --------------------------------------------------------------------------


async def test_anonymous_socket_is_closed_with_4401(connect: Connect, room: Room) -> None:
    tab = await connect("lounge", None, join=False)
    assert await close_code(tab) == 4401


async def test_unknown_room_is_closed_with_4404(connect: Connect, alice: tuple[User, str]) -> None:
    tab = await connect("nowhere", alice[1], join=False)
    assert await close_code(tab) == 4404


async def test_private_room_refuses_outsiders_with_4403(
    connect: Connect, room: Room, bob: tuple[User, str]
) -> None:
    await Room.objects.filter(pk=room.pk).aupdate(is_private=True)
    tab = await connect("lounge", bob[1], join=False)
    assert await close_code(tab) == 4403


async def test_foreign_or_missing_origin_is_refused_at_the_handshake(
    room: Room, alice: tuple[User, str]
) -> None:
    for headers in ([(b"origin", b"http://evil.example")], []):
        comm = WebsocketCommunicator(
            application,
            "/ws/rooms/lounge/",
            headers=[*headers, (b"cookie", f"sessionid={alice[1]}".encode())],
        )
        connected, _ = await comm.connect(timeout=TIMEOUT)
        assert not connected


# --- snapshot, presence, messages -------------------------------------------------------


async def test_snapshot_then_presence_on_connect(
    connect: Connect, room: Room, alice: tuple[User, str]
) -> None:
    await Message.objects.acreate(room=room, role="user", author=alice[0], text="earlier")
    headers = [(b"origin", b"http://127.0.0.1"), (b"cookie", f"sessionid={alice[1]}".encode())]
    comm = WebsocketCommunicator(application, "/ws/rooms/lounge/", headers=headers)
    assert (await comm.connect())[0]
    snapshot = json.loads(await comm.receive_from())
    assert snapshot["type"] == "room.snapshot"
    assert snapshot["user"] == {"username": "alice"}
    assert snapshot["generation"] is None
    assert snapshot["room"] == {
        "slug": "lounge",
        "title": "Lounge",
        "owner": "alice",
        "model": "demo",
        "provider": "demo",
        "system_prompt": "",
        "models": [],
        "private": False,
        "members": [],
        "reply_mode": "always",
        "summary_upto_id": 0,
    }
    assert snapshot["budget"] == {
        "user_spent_usd": 0.0,
        "user_limit_usd": 1.0,
        "room_spent_usd": 0.0,
        "room_limit_usd": 5.0,
    }
    [message] = snapshot["messages"]
    assert message["text"] == "earlier" and message["author"] == "alice"
    assert message["created_at"].endswith("Z")
    presence = json.loads(await comm.receive_from())
    assert presence == {"type": "presence", "users": ["alice"]}
    await comm.disconnect()


async def test_presence_tells_everyone_when_people_come_and_go(
    connect: Connect, room: Room, alice: tuple[User, str], bob: tuple[User, str]
) -> None:
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    assert b.frames[-1]["users"] == ["alice", "bob"]
    assert (await a.until("presence"))["users"] == ["alice", "bob"]
    a2 = await connect("lounge", alice[1])  # a second tab of alice changes nothing
    assert a2.frames[-1]["users"] == ["alice", "bob"]
    await b.comm.disconnect()
    assert (await a.until("presence"))["users"] == ["alice"]


async def test_a_message_reaches_every_tab_and_claude_answers(
    connect: Connect, room: Room, alice: tuple[User, str], bob: tuple[User, str]
) -> None:
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    await a.send({"type": "message.send", "text": "Hello\x00 Claude", "client_msg_id": "m-1"})
    for tab in (a, b):
        created = await tab.until("message.created")
        assert created["message"]["text"] == "Hello Claude"
        assert created["message"]["client_msg_id"] == "m-1"
        assert created["message"]["role"] == "user" and created["message"]["status"] == "complete"
    started = await a.until("generation.started")
    assert started["model"] == "demo"
    finished = {}
    for tab in (a, b):
        finished[tab] = await tab.until("generation.finished", timeout=20)
    reply_id = started["message_id"]
    for tab, fin in finished.items():
        deltas = tab.deltas(reply_id)
        assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
        assert "".join(d["text"] for d in deltas) == fin["text"]
        assert fin["status"] == "complete" and fin["stop_reason"] == "end_turn"
        assert fin["error"] is None
        assert "Hello Claude" in fin["text"]
    stored = await Message.objects.aget(pk=reply_id)
    assert stored.text == finished[a]["text"] and stored.status == "complete"
    assert stored.output_tokens == finished[a]["usage"]["output_tokens"] > 0
    # Timing as measured: the demo sleeps before every piece, so the first token takes at least
    # one pause and the whole reply at least one pause per piece.
    pause_ms = 1000 / django_settings.DEMO_WORDS_PER_SECOND
    pieces = len(split_words(stored.text))
    assert stored.time_to_first_token_ms is not None and stored.duration_ms is not None
    assert pause_ms * 0.9 <= stored.time_to_first_token_ms < stored.duration_ms
    assert stored.duration_ms >= pieces * pause_ms * 0.9
    assert stored.finished_at is not None and stored.finished_at >= stored.created_at


async def test_a_repeated_client_msg_id_stores_nothing_and_sends_nothing(
    connect: Connect, room: Room, alice: tuple[User, str]
) -> None:
    a = await connect("lounge", alice[1])
    await a.send({"type": "message.send", "text": "once", "client_msg_id": "same"})
    await a.until("generation.finished", timeout=20)
    await a.send({"type": "message.send", "text": "twice, other text", "client_msg_id": "same"})
    await a.send({"type": "sync"})
    # The very next frame answers the sync: the repeat produced nothing at all.
    snapshot = await a.next()
    assert snapshot["type"] == "room.snapshot"
    assert await Message.objects.filter(role="user").acount() == 1
    assert await Message.objects.filter(role="assistant").acount() == 1
    assert [m["client_msg_id"] for m in snapshot["messages"]] == ["same", None]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1]", "invalid_message"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": "message.send", "text": "  "}', "empty"),
        ('{"type": "message.send", "text": "' + "x" * 8001 + '"}', "too_long"),
        (
            '{"type": "message.send", "text": "hi", "client_msg_id": "' + "c" * 65 + '"}',
            "invalid_message",
        ),
        ('{"type": "sync", "pad": "' + "p" * (64 * 1024) + '"}', "too_long"),
        ("[" * 100_000 + "]" * 100_000, "too_long"),
        ("[" * 20_000 + "]" * 20_000, "invalid_json"),  # too deep for json: RecursionError
        ('{"text": "no type"}', "invalid_message"),
        ('{"type": 7}', "invalid_message"),
        ('{"type": "message.send", "text": 5}', "invalid_message"),
        ('{"type": "message.send"}', "invalid_message"),
        ('{"type": "message.send", "text": "hi", "client_msg_id": 12}', "invalid_message"),
        ('{"type": "generation.stop", "message_id": "x"}', "invalid_message"),
        ('{"type": "generation.stop", "message_id": true}', "invalid_message"),
        ('{"type": "room.update"}', "invalid_message"),
        ('{"type": "room.update", "colour": "red"}', "invalid_message"),
        ('{"type": "room.update", "title": "' + "t" * 101 + '"}', "invalid_message"),
        ('{"type": "room.update", "system_prompt": "' + "s" * 4001 + '"}', "invalid_message"),
        ('{"type": "room.update", "model": 3}', "invalid_message"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(
    connect: Connect, room: Room, alice: tuple[User, str], raw: str, code: str
) -> None:
    a = await connect("lounge", alice[1])  # alice owns the room: updates would be allowed
    await a.comm.send_to(text_data=raw)
    error = await a.until("error")
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await a.send({"type": "sync"})
    assert (await a.next())["type"] == "room.snapshot"
    assert await Message.objects.acount() == 0
    stored = await Room.objects.aget(pk=room.pk)
    assert (stored.title, stored.system_prompt, stored.model) == (
        room.title,
        room.system_prompt,
        room.model,
    )


async def test_binary_frames_are_refused(
    connect: Connect, room: Room, alice: tuple[User, str]
) -> None:
    a = await connect("lounge", alice[1])
    await a.comm.send_to(bytes_data=b"\x00\x01")
    assert (await a.until("error"))["code"] == "invalid_json"


async def test_rate_limit_refuses_with_retry_after(
    connect: Connect, room: Room, alice: tuple[User, str], settings: Any
) -> None:
    settings.CHAT_RATE_PER_MINUTE = 2
    a = await connect("lounge", alice[1])
    for i in range(2):
        await a.send({"type": "message.send", "text": f"m{i}"})
        await a.until("message.created")
    await a.send({"type": "message.send", "text": "one too many"})
    error = await a.until("error")
    assert error["code"] == "rate_limited"
    assert 0 < error["retry_after"] <= 60
    assert await Message.objects.filter(role="user").acount() == 2


# --- replies: stop, sync, hand-over, independence from the asking tab ----------------------


async def test_stop_ends_the_reply_for_everyone_and_keeps_the_partial_text(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: Any,
) -> None:
    use_fake_anthropic.queue(Reply(chunks=[f"w{i} " for i in range(200)], delay=0.02))
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    await a.send({"type": "message.send", "text": "talk for a while"})
    started = await a.until("generation.started")
    await a.until("generation.delta", seq=3)
    await b.send({"type": "generation.stop", "message_id": started["message_id"]})
    for tab in (a, b):
        fin = await tab.until("generation.finished")
        assert fin["status"] == "stopped" and fin["stop_reason"] is None
        assert fin["text"] == "".join(d["text"] for d in tab.deltas(started["message_id"]))
        assert 0 < len(fin["text"]) < len("".join(f"w{i} " for i in range(200)))
    stored = await Message.objects.aget(pk=started["message_id"])
    assert stored.status == "stopped" and stored.text == fin["text"]


async def test_a_reply_reaped_by_another_process_stops_and_leaves_the_next_one_alone(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    use_fake_anthropic: Any,
    settings: Any,
) -> None:
    settings.ROOM_LOCK_TTL = 1.0  # the lock keeper looks every 0.2 s
    use_fake_anthropic.queue(Reply(chunks=[f"w{i} " for i in range(300)], delay=0.02))
    a = await connect("lounge", alice[1])
    await a.say("talk for a while")
    reply_id = (await a.until("generation.started"))["message_id"]
    await a.until("generation.delta", seq=3)

    # What another process does when it took this one for dead (it could not reach Redis for
    # longer than the lock's TTL): its reaper stores the reply, and the next reply begins.
    await Message.objects.filter(pk=reply_id).aupdate(status="interrupted", text="reaped")
    following = await Message.objects.acreate(room=room, role="assistant", status="streaming")
    await shared_state().live.start(room.pk, following.pk)

    async with asyncio.timeout(5):
        while reply_runner().running(room.pk):
            await asyncio.sleep(0.05)
    # Frames already on their way still arrive; then the room hears nothing more of it.
    async with asyncio.timeout(3):
        while not await a.quiet(0.5):
            await a.next()
    sent = a.deltas(reply_id)
    assert len(sent) < 300 and not a.of_type("generation.finished")
    stored = await Message.objects.aget(pk=reply_id)
    assert (stored.status, stored.text) == ("interrupted", "reaped")
    live = await shared_state().live.get(room.pk)
    assert live is not None and (live.message_id, live.seq, live.text) == (following.pk, 0, "")


async def test_sync_mid_reply_gives_the_exact_text_so_far(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: Any
) -> None:
    use_fake_anthropic.queue(Reply(chunks=[f"t{i} " for i in range(60)], delay=0.02))
    a = await connect("lounge", alice[1])
    await a.send({"type": "message.send", "text": "go"})
    started = await a.until("generation.started")
    await a.until("generation.delta", seq=2)
    await a.send({"type": "sync"})
    snapshot = await a.until("room.snapshot")
    generation = snapshot["generation"]
    assert generation["message_id"] == started["message_id"]
    [streaming] = [m for m in snapshot["messages"] if m["status"] == "streaming"]
    assert streaming["id"] == started["message_id"] and streaming["text"] == generation["text"]
    # The live state is written before each delta is broadcast: the snapshot may be ahead of
    # the deltas this tab has read so far, never behind. Compare once they have arrived.
    fin = await a.until("generation.finished")
    before = [d for d in a.deltas(started["message_id"]) if d["seq"] <= generation["seq"]]
    assert generation["text"] == "".join(d["text"] for d in before)
    after = [d for d in a.deltas(started["message_id"]) if d["seq"] > generation["seq"]]
    assert generation["text"] + "".join(d["text"] for d in after) == fin["text"]


async def test_the_reply_outlives_the_tab_that_asked(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: Any,
) -> None:
    use_fake_anthropic.queue(Reply(chunks=[f"x{i} " for i in range(40)], delay=0.02))
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    await a.send({"type": "message.send", "text": "answer bob too"})
    await b.until("generation.delta", seq=1)
    await a.comm.disconnect()
    fin = await b.until("generation.finished")
    assert fin["status"] == "complete"
    assert fin["text"] == "".join(f"x{i} " for i in range(40))


async def test_messages_sent_during_a_reply_are_answered_together_next(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: Any,
) -> None:
    use_fake_anthropic.queue(Reply(chunks=["first "] * 30, delay=0.02), Reply(chunks=["second"]))
    a = await connect("lounge", alice[1])
    await a.send({"type": "message.send", "text": "q1"})
    first = await a.until("generation.started")
    await a.until("generation.delta", seq=1)
    await a.send({"type": "message.send", "text": "q2"})
    await a.send({"type": "message.send", "text": "q3"})
    await a.until("generation.finished", message_id=first["message_id"])
    second = await a.until("generation.started")
    fin = await a.until("generation.finished", message_id=second["message_id"])
    assert fin["text"] == "second"
    assert await a.quiet(0.5)  # no third reply
    requests = use_fake_anthropic.requests
    assert len(requests) == 2
    last_turn = requests[1].body["messages"][-1]["content"][0]["text"]
    assert "alice: q2" in last_turn and "alice: q3" in last_turn


async def test_retries_before_the_first_token_are_announced(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: Any
) -> None:
    use_fake_anthropic.queue(Fail(429, retry_after=0.2), Fail(529), Reply(chunks=["ok"]))
    a = await connect("lounge", alice[1])
    await a.send({"type": "message.send", "text": "hi"})
    started = await a.until("generation.started")
    first = await a.until("generation.retrying")
    assert first["attempt"] == 2 and first["reason"] == "rate_limited"
    assert first["retry_in"] >= 0.2 and first["message_id"] == started["message_id"]
    second = await a.until("generation.retrying")
    assert second["attempt"] == 3 and second["reason"] == "overloaded"
    fin = await a.until("generation.finished")
    assert fin["status"] == "complete" and fin["text"] == "ok"


async def test_a_retry_after_longer_than_a_minute_ends_the_reply_instead_of_holding_the_room(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: Any
) -> None:
    use_fake_anthropic.queue(Fail(429, retry_after=120), Reply(chunks=["too late"]))
    a = await connect("lounge", alice[1])
    await a.say("hi")
    fin = await a.until("generation.finished", timeout=5)
    assert (fin["status"], fin["text"]) == ("error", "")
    assert fin["error"]["code"] == "upstream_unavailable"
    assert not a.of_type("generation.retrying")
    assert len(use_fake_anthropic.requests) == 1


async def test_a_rejected_key_is_a_configuration_error_without_retries(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: Any
) -> None:
    use_fake_anthropic.queue(Fail(401))
    a = await connect("lounge", alice[1])
    await a.send({"type": "message.send", "text": "hi"})
    fin = await a.until("generation.finished")
    assert fin["status"] == "error" and fin["text"] == ""
    assert fin["error"]["code"] == "configuration"
    assert "misconfigured" in fin["error"]["message"]
    assert "test-key" not in json.dumps(fin)
    assert not any(f["type"] == "generation.retrying" for f in a.frames)
    assert len(use_fake_anthropic.requests) == 1


async def test_request_carries_labelled_history_system_prompt_and_max_tokens(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: Any, settings: Any
) -> None:
    settings.LLM_MAX_TOKENS = 321
    await Room.objects.filter(pk=room.pk).aupdate(system_prompt="Be brief.")
    a = await connect("lounge", alice[1])
    await a.send({"type": "message.send", "text": "first"})
    await a.until("generation.finished")
    await a.send({"type": "message.send", "text": "second"})
    await a.until("generation.finished")
    request = use_fake_anthropic.requests[-1]
    body = request.body
    assert request.headers["authorization"] == "Bearer test-key"
    assert body["max_tokens"] == 321 and body["model"] == "claude-sonnet-5-5"
    assert body["system"] == [
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
    ]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][0]["text"] == "alice: first"
    assert body["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][2]["content"][0]["text"] == "alice: second"


# --- room settings ------------------------------------------------------------------------


async def test_owner_updates_the_room_and_everyone_hears(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: Any,
) -> None:
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    await a.send({"type": "room.update", "title": "Study", "model": "claude-haiku-5-5"})
    for tab in (a, b):
        updated = await tab.until("room.updated")
        assert updated["room"]["title"] == "Study"
        assert updated["room"]["model"] == "claude-haiku-5-5"
        assert updated["room"]["models"] == ["claude-sonnet-5-5", "claude-haiku-5-5"]
    await b.send({"type": "room.update", "title": "Mine now"})
    assert (await b.until("error"))["code"] == "forbidden"
    await a.send({"type": "room.update", "model": "claude-sonnet-4-5"})
    refused = await a.until("error")
    assert refused["code"] == "invalid_message" and "deprecated" in refused["message"]
    await a.send({"type": "room.update", "model": "gpt-5"})
    assert (await a.until("error"))["code"] == "invalid_message"
    stored = await Room.objects.aget(pk=room.pk)
    assert (stored.title, stored.model) == ("Study", "claude-haiku-5-5")
