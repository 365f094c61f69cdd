"""The group conversation across two real daphne processes sharing Redis and the database, with
the real SDK talking to the fake Anthropic API (SPEC §6-§7): reply modes, regenerate, reactions,
typing and who stopped a reply, with each person's tabs on different processes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chatsite.conversation.reply_modes import DECISION_MAX_TOKENS
from chatsite.rooms.models import Message, Room
from tests.conftest import DaphnePair, WsConnect
from tests.fakes import Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.support import unique_name
from tests.support.people import People, join, make_people
from tests.support.wsclient import RoomSocket

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server_env(server_env: Mapping[str, str]) -> Mapping[str, str]:
    """This module's own Redis key prefix (locks, limits, presence of other modules stay out)."""
    return MappingProxyType({**server_env, "REDIS_KEY_PREFIX": unique_name("group")})


@sync_to_async
def set_mode(room: Room, mode: str) -> None:
    Room.objects.filter(pk=room.pk).update(reply_mode=mode)


@sync_to_async
def stored(message_id: int) -> Message:
    return Message.objects.select_related("stopped_by").get(pk=message_id)


async def say(sock: RoomSocket, text: str) -> int:
    """Send `text` from this tab; the stored message's id."""
    mark = sock.mark()
    await sock.send({"type": "message.send", "text": text})
    created = await sock.wait_for(
        "message.created", since=mark, where=lambda f: f["message"]["text"] == text
    )
    return int(created["message"]["id"])


def reply_bodies(fake: FakeAnthropic) -> list[dict[str, Any]]:
    return [
        r.body
        for r in fake.requests
        if r.body is not None and r.body.get("max_tokens") != DECISION_MAX_TOKENS
    ]


async def people_in(
    pair: DaphnePair, ws_connect: WsConnect, unique: Any, mode: str = "always"
) -> tuple[People, RoomSocket, RoomSocket]:
    """A room in `mode`; alice's tab on process a, bob's on process b."""
    p = await make_people(unique, title="Group")
    await set_mode(p.room, mode)
    a = await join(ws_connect, pair.a.ws_url, p.slug, p.alice_cookie)
    b = await join(ws_connect, pair.b.ws_url, p.slug, p.bob_cookie)
    return p, a, b


async def test_mention_mode_across_processes(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    p, a, b = await people_in(daphne_pair, ws_connect, unique, "mention")
    mark = b.mark()
    chatter = await say(a, "hey bob, you free saturday?")
    await b.wait_for("message.created", since=mark)
    await b.expect_silence(1.0, "generation.started")
    assert fake_anthropic.requests == []

    mention = await say(b, "@claude what could we do saturday?")
    started = await a.wait_for("generation.started")
    for sock in (a, b):
        await sock.wait_for("generation.finished", message_id=started["message_id"])
    reply = await stored(started["message_id"])
    assert reply.in_reply_to == [chatter, mention]
    [body] = reply_bodies(fake_anthropic)
    context = json.dumps(body["messages"], ensure_ascii=False)
    assert f"{p.alice}: hey bob, you free saturday?" in context
    assert f"{p.bob}: @claude what could we do saturday?" in context


async def test_auto_mode_across_processes(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    _, a, b = await people_in(daphne_pair, ws_connect, unique, "auto")
    fake_anthropic.queue(Reply(chunks=["no"]), Reply(chunks=["yes"]))
    chatter = await say(a, "bob, lunch at noon?")
    await fake_anthropic.await_requests(1)
    await b.expect_silence(1.0, "generation.started")
    question = await say(b, "what is the capital of Australia?")
    started = await a.wait_for("generation.started")
    await b.wait_for("generation.finished", message_id=started["message_id"])
    assert (await stored(started["message_id"])).in_reply_to == [chatter, question]
    asked = [
        r.body
        for r in fake_anthropic.requests
        if r.body and r.body["max_tokens"] == DECISION_MAX_TOKENS
    ]
    assert [body["model"] for body in asked] == ["claude-haiku-5-5"] * 2


async def test_regenerate_across_processes(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    _, a, b = await people_in(daphne_pair, ws_connect, unique)
    fake_anthropic.queue(Reply(chunks=["OLD-ANSWER."]), Reply(chunks=["NEW-ANSWER."]))
    sent = await say(a, "explain tides")
    first = await a.wait_for("generation.started")
    await b.wait_for("generation.finished", message_id=first["message_id"])

    await b.send({"type": "generation.regenerate", "message_id": first["message_id"]})
    for sock in (a, b):
        await sock.wait_for("message.superseded", message_id=first["message_id"])
    again = await a.wait_for("generation.started")
    finished = await b.wait_for("generation.finished", message_id=again["message_id"])
    assert finished["text"] == "NEW-ANSWER."
    assert (await stored(again["message_id"])).in_reply_to == [sent]
    assert "OLD-ANSWER" not in json.dumps(reply_bodies(fake_anthropic)[-1]["messages"])

    # While a reply runs on process a, process b answers busy; an older reply is not_found.
    fake_anthropic.queue(Reply(chunks=[f"w{i} " for i in range(150)], delay=0.02))
    await say(a, "talk for a while")
    running = await a.wait_for("generation.started")
    mark = b.mark()
    await b.send({"type": "generation.regenerate", "message_id": again["message_id"]})
    assert (await b.wait_for("error", since=mark))["code"] == "busy"
    await a.send({"type": "generation.stop"})
    await b.wait_for("generation.finished", message_id=running["message_id"])
    mark = b.mark()
    await b.send({"type": "generation.regenerate", "message_id": again["message_id"]})
    assert (await b.wait_for("error", since=mark))["code"] == "not_found"


async def test_reactions_typing_and_stopped_by_across_processes(
    daphne_pair: DaphnePair, fake_anthropic: FakeAnthropic, ws_connect: WsConnect, unique: Any
) -> None:
    p, a, b = await people_in(daphne_pair, ws_connect, unique)
    alice_on_b = await join(ws_connect, daphne_pair.b.ws_url, p.slug, p.alice_cookie)
    fake_anthropic.queue(Reply(chunks=[f"w{i} " for i in range(150)], delay=0.02))
    await say(a, "talk for a while")
    started = await a.wait_for("generation.started")
    await b.wait_for("generation.delta", message_id=started["message_id"], seq=2)
    await b.send({"type": "generation.stop", "message_id": started["message_id"]})
    for sock in (a, b, alice_on_b):
        finished = await sock.wait_for("generation.finished", message_id=started["message_id"])
        assert finished["status"] == "stopped" and finished["stopped_by"] == p.bob
    assert (await stored(started["message_id"])).stopped_by.username == p.bob  # type: ignore[union-attr]

    await a.send({"type": "reaction.toggle", "message_id": started["message_id"], "emoji": "🎉"})
    for sock in (b, alice_on_b):
        updated = await sock.wait_for("reaction.updated", message_id=started["message_id"])
        assert updated["reactions"] == {"🎉": [p.alice]}

    marks = {sock: sock.mark() for sock in (a, alice_on_b)}
    await a.send({"type": "typing"})
    assert (await b.wait_for("typing"))["username"] == p.alice
    await b.expect_silence(0.5, "typing")  # nothing more from alice's one keystroke
    for sock, mark in marks.items():  # alice's own tabs, on either process, hear nothing
        await sock.expect_silence(0.3, "typing", since=mark)
