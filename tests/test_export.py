"""`/rooms/<slug>/export.md` and `.json` (SPEC §5): the whole room, for whoever may enter it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import Client

from chatsite.conversation import export
from chatsite.rooms.models import Message, Reaction, Room

pytestmark = pytest.mark.django_db


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def body_of(answer: Any) -> str:
    assert answer.streaming

    async def collect() -> bytes:
        return b"".join([part async for part in answer.streaming_content])

    return async_to_sync(collect)().decode()


@pytest.fixture
def talk() -> dict[str, Any]:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    room = Room.objects.create(slug="garden", title="The *garden*", owner=alice, model="m")
    ask = Message.objects.create(room=room, role="user", author=alice, text="@claude **hi**")
    chat = Message.objects.create(room=room, role="user", author=bob, text="hello alice")
    old = Message.objects.create(
        room=room,
        role="assistant",
        model="claude-haiku-5-5",
        text="first try",
        status="stopped",
        stopped_by=bob,
        in_reply_to=[ask.pk, chat.pk],
        superseded=True,
    )
    new = Message.objects.create(
        room=room,
        role="assistant",
        model="claude-haiku-5-5",
        text="second try",
        in_reply_to=[ask.pk, chat.pk],
    )
    Reaction.objects.create(message=new, user=bob, emoji="👍")
    Reaction.objects.create(message=new, user=alice, emoji="👍")
    Reaction.objects.create(message=ask, user=bob, emoji="🎉")
    return {"alice": alice, "bob": bob, "room": room, "ids": [ask.pk, chat.pk, old.pk, new.pk]}


def test_json_export_is_the_room_and_every_message(talk: dict[str, Any]) -> None:
    answer = client_for(talk["bob"]).get("/rooms/garden/export.json")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    assert 'filename="garden.json"' in answer["Content-Disposition"]
    data = json.loads(body_of(answer))
    assert set(data) == {"room", "messages"}
    assert data["room"]["slug"] == "garden" and data["room"]["reply_mode"] == "always"
    assert [m["id"] for m in data["messages"]] == talk["ids"]
    ask, _, old, new = data["messages"]
    assert ask["reactions"] == {"🎉": ["bob"]} and ask["author"] == "alice"
    assert old["stopped_by"] == "bob" and old["superseded"] and old["status"] == "stopped"
    assert new["reactions"] == {"👍": ["alice", "bob"]}
    assert new["in_reply_to"] == talk["ids"][:2]


def test_markdown_export_has_title_authors_times_statuses_and_reactions(
    talk: dict[str, Any],
) -> None:
    answer = client_for(talk["alice"]).get("/rooms/garden/export.md")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/markdown; charset=utf-8"
    text = body_of(answer)
    assert text.startswith("# The *garden*\n")
    ask, chat, old, _ = talk["ids"]

    def when(message_id: int) -> str:
        return Message.objects.get(pk=message_id).created_at.strftime("%Y-%m-%d %H:%M UTC")

    assert (
        f"### #{ask} alice\n\n*{when(ask)} · complete*\n\n@claude **hi**\n\nReactions: 🎉 bob"
        in text
    )
    assert f"### #{chat} bob" in text
    assert (
        f"### #{old} Claude (claude-haiku-5-5)\n\n*{when(old)} · stopped · answering #{ask}, #{chat}"
        " · stopped by bob · superseded by a regenerated reply*\n\nfirst try" in text
    )
    assert "second try\n\nReactions: 👍 alice, bob" in text
    assert text.index(f"#{ask} ") < text.index(f"#{chat} ") < text.index(f"#{old} ")


def test_exports_stream_every_message_in_batches(
    talk: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "BATCH", 3)
    room = talk["room"]
    Message.objects.bulk_create(
        Message(room=room, role="user", author=talk["bob"], text=f"line {i}") for i in range(7)
    )
    data = json.loads(body_of(client_for(talk["bob"]).get("/rooms/garden/export.json")))
    assert len(data["messages"]) == 11
    ids = [m["id"] for m in data["messages"]]
    assert ids == sorted(ids) and len(set(ids)) == 11


def test_who_may_not_enter_gets_404_and_anonymous_is_sent_to_log_in(
    talk: dict[str, Any],
) -> None:
    Room.objects.filter(pk=talk["room"].pk).update(is_private=True)
    outsider = User.objects.create_user("carol")
    for path in ("/rooms/garden/export.md", "/rooms/garden/export.json"):
        assert client_for(outsider).get(path).status_code == 404
        assert client_for(talk["alice"]).get(path).status_code == 200
        anonymous = client_for(None).get(path)
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert client_for(outsider).get("/rooms/nowhere/export.md").status_code == 404
