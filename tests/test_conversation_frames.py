"""Regenerate, reactions, typing and who stopped a reply (SPEC §6-§7) at unit level: frames in,
frames out through the real ASGI app with the real SDK against the fake Anthropic API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from chatsite.conversation.models import RoomEvent
from chatsite.rooms.models import Message, Room
from chatsite.rooms.serializers import iso_utc
from chatsite.usage.store import reset_counters
from consumers import limit_guard
from consumers.actions import reactions
from tests.consumer_fixtures import *  # noqa: F403  (fixtures: fresh_process, alice, bob, room, connect, ...)
from tests.consumer_fixtures import Connect, Tab
from tests.fakes import Reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.test_reply_modes import heard, spend

pytestmark = pytest.mark.django_db(transaction=True)


async def finished_reply(tab: Tab, text: str) -> tuple[int, dict[str, Any]]:
    """Send `text` and wait for its reply to end: (the user message id, the finished frame)."""
    await tab.say(text)
    sent = (await tab.until("message.created"))["message"]["id"]
    started = await tab.until("generation.started")
    return sent, await tab.until("generation.finished", message_id=started["message_id"])


# --- regenerate ------------------------------------------------------------------------------


async def test_regenerate_answers_the_same_turns_without_the_old_reply(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
) -> None:
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    use_fake_anthropic.queue(Reply(chunks=["FIRST-VERSION ", "of the answer."]))
    sent, first = await finished_reply(a, "explain tides")
    old_id = first["message_id"]
    use_fake_anthropic.queue(Reply(chunks=["SECOND-VERSION."]))

    await b.send({"type": "generation.regenerate", "message_id": old_id})  # any member may
    for tab in (a, b):
        assert (await tab.until("message.superseded"))["message_id"] == old_id
    started = await b.until("generation.started")
    assert started["message_id"] > old_id
    finished = await a.until("generation.finished", message_id=started["message_id"])
    assert finished["text"] == "SECOND-VERSION." and finished["status"] == "complete"

    old = await Message.objects.aget(pk=old_id)
    new = await Message.objects.aget(pk=started["message_id"])
    assert old.superseded and old.text == "FIRST-VERSION of the answer."
    assert not new.superseded and new.in_reply_to == old.in_reply_to == [sent]
    regenerated = use_fake_anthropic.requests[-1].body
    assert regenerated is not None
    assert "FIRST-VERSION" not in json.dumps(regenerated["messages"])
    assert "alice: explain tides" in json.dumps(regenerated["messages"])

    await a.send({"type": "sync"})
    snapshot = await a.until("room.snapshot")
    shown = {m["id"]: m["superseded"] for m in snapshot["messages"] if m["role"] == "assistant"}
    assert shown == {old_id: True, new.pk: False}

    # Later replies do not read the superseded one either.
    await finished_reply(a, "and the moon?")
    later = use_fake_anthropic.requests[-1].body
    assert later is not None
    context = json.dumps(later["messages"])
    assert "FIRST-VERSION" not in context and "SECOND-VERSION." in context


async def test_regenerate_refuses_anything_but_the_newest_reply_and_a_running_room(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: FakeAnthropic
) -> None:
    a = await connect("lounge", alice[1])
    sent, first = await finished_reply(a, "one")
    _, second = await finished_reply(a, "two")
    for message_id in (first["message_id"], sent, 10**9):
        await a.send({"type": "generation.regenerate", "message_id": message_id})
        assert (await a.until("error"))["code"] == "not_found"

    use_fake_anthropic.queue(Reply(chunks=[f"w{i} " for i in range(100)], delay=0.02))
    await a.say("talk for a while")
    running = await a.until("generation.started")
    for message_id in (second["message_id"], running["message_id"]):
        await a.send({"type": "generation.regenerate", "message_id": message_id})
        assert (await a.until("error"))["code"] == "busy"
    await a.send({"type": "generation.stop"})
    stopped = await a.until("generation.finished", message_id=running["message_id"])
    assert stopped["status"] == "stopped"
    # A stopped reply may be regenerated too (any status).
    await a.send({"type": "generation.regenerate", "message_id": running["message_id"]})
    assert (await a.until("message.superseded"))["message_id"] == running["message_id"]
    again = await a.until("generation.started")
    await a.until("generation.finished", message_id=again["message_id"])
    assert await Message.objects.filter(superseded=True).acount() == 1


async def test_regenerate_is_refused_over_budget_and_changes_nothing(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: FakeAnthropic
) -> None:
    reset_counters()
    a = await connect("lounge", alice[1])
    _, reply = await finished_reply(a, "one")
    await spend(room, alice[0], 2)
    await a.send({"type": "generation.regenerate", "message_id": reply["message_id"]})
    error = await a.until("error")
    assert error["code"] == "budget_exceeded" and error["retry_after"] > 0
    assert not (await Message.objects.aget(pk=reply["message_id"])).superseded
    assert await Message.objects.filter(role="assistant").acount() == 1


# --- reactions -------------------------------------------------------------------------------


async def test_reactions_toggle_reach_everyone_and_show_in_snapshots(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
) -> None:
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    sent, reply = await finished_reply(a, "react to me")
    reply_id = reply["message_id"]

    await a.send({"type": "reaction.toggle", "message_id": reply_id, "emoji": "👍"})
    await b.send({"type": "reaction.toggle", "message_id": reply_id, "emoji": "👍"})
    await b.send({"type": "reaction.toggle", "message_id": sent, "emoji": "❤️"})
    for tab in (a, b):
        frame = await tab.until("reaction.updated", message_id=reply_id)
        frame = await tab.until("reaction.updated", message_id=reply_id)
        assert frame["reactions"] == {"👍": ["alice", "bob"]}
        frame = await tab.until("reaction.updated", message_id=sent)
        assert frame["reactions"] == {"❤️": ["bob"]}

    await a.send({"type": "reaction.toggle", "message_id": reply_id, "emoji": "👍"})  # back
    assert (await b.until("reaction.updated"))["reactions"] == {"👍": ["bob"]}
    await b.send({"type": "sync"})
    snapshot = await b.until("room.snapshot")
    by_id = {m["id"]: m["reactions"] for m in snapshot["messages"]}
    assert by_id == {sent: {"❤️": ["bob"]}, reply_id: {"👍": ["bob"]}}


async def test_reactions_are_rate_limited_per_person(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit_guard.reset()
    monkeypatch.setattr(reactions, "REACTIONS_PER_MINUTE", 2)
    sent = await Message.objects.acreate(room=room, role="user", author=alice[0], text="x")
    a = await connect("lounge", alice[1])
    for emoji in ("👍", "👀", "✅"):
        await a.send({"type": "reaction.toggle", "message_id": sent.pk, "emoji": emoji})
    assert (await a.until("reaction.updated"))["reactions"] == {"👍": ["alice"]}
    assert (await a.until("reaction.updated"))["reactions"] == {"👀": ["alice"], "👍": ["alice"]}
    refused = await a.until("error")
    assert refused["code"] == "rate_limited" and 0 < refused["retry_after"] <= 60
    assert await sent.reactions.acount() == 2


async def test_a_reaction_to_another_rooms_message_is_not_found(
    connect: Connect, room: Room, alice: tuple[User, str], bob: tuple[User, str]
) -> None:
    elsewhere = await Room.objects.acreate(slug="other", title="Other", owner=bob[0])
    theirs = await Message.objects.acreate(room=elsewhere, role="user", author=bob[0], text="x")
    a = await connect("lounge", alice[1])
    await a.send({"type": "reaction.toggle", "message_id": theirs.pk, "emoji": "👍"})
    assert (await a.until("error"))["code"] == "not_found"
    await a.send({"type": "reaction.toggle", "message_id": theirs.pk, "emoji": "🙂"})
    assert (await a.until("error"))["code"] == "invalid_message"
    assert not await theirs.reactions.aexists()


# --- typing ----------------------------------------------------------------------------------


async def test_typing_reaches_the_others_not_the_typists_tabs_at_most_every_two_seconds(
    connect: Connect, room: Room, alice: tuple[User, str], bob: tuple[User, str]
) -> None:
    limit_guard.reset()
    a1 = await connect("lounge", alice[1])
    a2 = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    for _ in range(3):
        await a1.send({"type": "typing"})
    await a2.send({"type": "typing"})
    assert await b.until("typing") == {"type": "typing", "username": "alice"}
    assert await heard(b, 0.5) == []  # the repeats within 2 s were dropped
    assert await heard(a1, 0.1) == [] and await heard(a2, 0.1) == []
    await b.send({"type": "typing"})
    for tab in (a1, a2):
        assert await tab.until("typing") == {"type": "typing", "username": "bob"}
    assert await heard(b, 0.3) == []


# --- who stopped -----------------------------------------------------------------------------


async def test_the_reply_says_who_stopped_it(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
) -> None:
    use_fake_anthropic.queue(Reply(chunks=[f"w{i} " for i in range(200)], delay=0.02))
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    await a.say("talk for a while")
    started = await a.until("generation.started")
    await a.until("generation.delta", seq=2)
    await b.send({"type": "generation.stop", "message_id": started["message_id"]})
    for tab in (a, b):
        finished = await tab.until("generation.finished", message_id=started["message_id"])
        assert finished["status"] == "stopped" and finished["stopped_by"] == "bob"
    stored = await Message.objects.select_related("stopped_by").aget(pk=started["message_id"])
    assert stored.stopped_by is not None and stored.stopped_by.username == "bob"
    _, complete = await finished_reply(a, "and now in full")
    assert complete["status"] == "complete" and complete["stopped_by"] is None


# --- settings changes as events --------------------------------------------------------------


async def test_settings_changes_are_events_live_and_in_a_later_joiners_snapshot(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
) -> None:
    # Answered already (a reply), so no reply starts meanwhile.
    earlier = await Message.objects.acreate(room=room, role="assistant", text="hi", model="demo")
    a = await connect("lounge", alice[1])
    assert a.frames[0]["events"] == []
    await a.send({"type": "room.update", "reply_mode": "mention", "model": "claude-haiku-5-5"})
    updated = await a.until("room.updated")
    live = updated["events"]
    assert [(e["kind"], e["value"], e["actor"]) for e in live] == [
        ("model", "claude-haiku-5-5", "alice"),
        ("reply_mode", "mention", "alice"),
    ]
    assert live[0]["id"] < live[1]["id"] and live[0]["created_at"].endswith("Z")
    assert live[0]["created_at"] >= iso_utc(earlier.created_at)

    # The same again changes nothing, so it records nothing.
    await a.send({"type": "room.update", "reply_mode": "mention", "model": "claude-haiku-5-5"})
    assert "events" not in await a.until("room.updated")
    # A new prompt is an event that does not carry the prompt.
    await a.send({"type": "room.update", "system_prompt": "Speak like a pirate."})
    prompt = (await a.until("room.updated"))["events"]
    assert [(e["kind"], e["value"]) for e in prompt] == [("system_prompt", "changed")]

    b = await connect("lounge", bob[1])  # joins after the changes
    snapshot = b.frames[0]
    assert [m["id"] for m in snapshot["messages"]] == [earlier.pk]
    assert snapshot["events"] == live + prompt
    assert "pirate" not in json.dumps(snapshot["events"])
    stored = await RoomEvent.objects.filter(room=room).acount()
    assert stored == 3


async def test_a_snapshot_carries_the_events_of_the_conversation_it_shows(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: FakeAnthropic
) -> None:
    await RoomEvent.objects.abulk_create(
        RoomEvent(room=room, actor=alice[0], kind="title", value=f"t{i}") for i in range(25)
    )
    a = await connect("lounge", alice[1])
    assert [e["value"] for e in a.frames[0]["events"]] == [f"t{i}" for i in range(5, 25)]

    # Once 50 messages (a snapshot's worth) follow, the earlier changes are of older history.
    await Message.objects.abulk_create(
        Message(room=room, role="assistant", text=f"r{i}", model="demo") for i in range(50)
    )
    await a.send({"type": "room.update", "title": "After"})
    await a.until("room.updated")
    await a.send({"type": "sync"})
    snapshot = await a.until("room.snapshot")
    assert len(snapshot["messages"]) == 50
    assert [(e["kind"], e["value"], e["actor"]) for e in snapshot["events"]] == [
        ("title", "After", "alice")
    ]
