"""`GET /api/rooms`: the room page's side list (issue 14) — your rooms, each with its newest
message id and the ids of its newest messages by others, for unread counts kept in the browser."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chatsite.rooms import roomlist
from chatsite.rooms.models import Membership, Message, Room

pytestmark = pytest.mark.django_db


def get_rooms(user: User | None) -> tuple[int, dict[str, object]]:
    client = Client()
    if user is not None:
        client.force_login(user)
    answer = client.get("/api/rooms")
    return answer.status_code, answer.json()


def test_anonymous_gets_401_json() -> None:
    status, body = get_rooms(None)
    assert status == 401
    assert "error" in body


def test_your_rooms_with_newest_ids_and_messages_by_others() -> None:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    owned = Room.objects.create(slug="owned", title="Owned", owner=alice)
    joined = Room.objects.create(slug="joined", title="", owner=bob, is_private=True)
    Membership.objects.create(room=joined, user=alice)
    wrote = Room.objects.create(slug="wrote", title="Wrote", owner=bob)
    Room.objects.create(slug="secret", title="Secret", owner=bob, is_private=True)
    Room.objects.create(slug="elsewhere", title="Elsewhere", owner=bob)

    mine = Message.objects.create(room=owned, role="user", author=alice, text="hi")
    theirs = Message.objects.create(room=owned, role="user", author=bob, text="hey")
    old = Message.objects.create(room=owned, role="assistant", text="a", superseded=True)
    reply = Message.objects.create(room=owned, role="assistant", text="b")
    Message.objects.create(room=wrote, role="user", author=alice, text="me too")

    status, body = get_rooms(alice)
    assert status == 200
    rooms = {room["slug"]: room for room in body["rooms"]}  # type: ignore[attr-defined]
    assert set(rooms) == {"owned", "joined", "wrote"}  # never someone else's room
    assert rooms["owned"] == {
        "slug": "owned",
        "title": "Owned",
        "private": False,
        "newest_id": reply.pk,
        # Not alice's own message, not the superseded version: what she has not read yet.
        "recent_ids": [reply.pk, theirs.pk],
    }
    assert old.pk not in rooms["owned"]["recent_ids"] and mine.pk < theirs.pk
    assert rooms["joined"]["title"] == "joined" and rooms["joined"]["private"] is True
    assert rooms["joined"]["newest_id"] is None and rooms["joined"]["recent_ids"] == []
    assert rooms["wrote"]["recent_ids"] == []
    assert body["limit"] == roomlist.RECENT_PER_ROOM


def test_recent_ids_stop_at_the_limit() -> None:
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")
    room = Room.objects.create(slug="busy", title="Busy", owner=alice)
    ids = [
        Message.objects.create(room=room, role="user", author=bob, text=str(n)).pk
        for n in range(roomlist.RECENT_PER_ROOM + 5)
    ]
    _, body = get_rooms(alice)
    rooms: Any = body["rooms"]
    assert len(rooms) == 1
    only = rooms[0]
    assert only["recent_ids"] == sorted(ids, reverse=True)[: roomlist.RECENT_PER_ROOM]
    assert only["newest_id"] == ids[-1]
