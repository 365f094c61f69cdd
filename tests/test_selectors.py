"""Reads the background loops depend on, against the test database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from chatsite.rooms import selectors, services
from chatsite.rooms.models import Message, Room

pytestmark = pytest.mark.django_db


def test_unanswered_rooms_are_those_whose_newest_message_is_a_users() -> None:
    alice = User.objects.create_user("alice")
    rooms = {
        name: Room.objects.create(slug=name, title=name, owner=alice)
        for name in ("asked", "answered", "asked-again", "quiet", "stale", "fresh")
    }

    def say(room: str, *roles: str) -> None:
        for role in roles:
            if role == "user":
                services.store_user_message(rooms[room], alice, f"hi {room}", None)
            else:
                services.start_reply(rooms[room].pk, "demo", "demo")

    say("asked", "user")
    say("answered", "user", "assistant")
    say("asked-again", "user", "assistant", "user", "user")
    say("stale", "user")
    say("fresh", "user")
    now = timezone.now()
    Room.objects.exclude(slug="fresh").update(updated_at=now - timedelta(minutes=5))
    Room.objects.filter(slug="stale").update(updated_at=now - timedelta(days=2))

    found = selectors.unanswered_rooms(timedelta(hours=24), timedelta(seconds=2))
    # "fresh" waits for its own runner (written under 2 s ago), "stale" is past the window.
    assert sorted(found) == sorted([rooms["asked"].pk, rooms["asked-again"].pk])
    assert Message.objects.filter(room=rooms["quiet"]).count() == 0
