"""Whether a room still owes a reply under its reply mode: the rule the hand-over and the
reaper follow (chatsite.conversation.turns, through chatsite.rooms.selectors)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from chatsite.conversation.models import ReplyDecision
from chatsite.conversation.turns import answered_ids
from chatsite.rooms import selectors
from chatsite.rooms.models import Message, Room

pytestmark = pytest.mark.django_db

WITHIN, SETTLED = timedelta(hours=1), timedelta(seconds=0)


def room_with(mode: str, *texts: str, reply_first: bool = False) -> tuple[Room, list[Message]]:
    owner, _ = User.objects.get_or_create(username="ann")
    room = Room.objects.create(slug=f"r-{Room.objects.count()}", title="R", owner=owner)
    Room.objects.filter(pk=room.pk).update(reply_mode=mode)
    room.refresh_from_db()
    if reply_first:
        Message.objects.create(room=room, role="assistant", text="earlier reply")
    sent = [Message.objects.create(room=room, role="user", author=owner, text=t) for t in texts]
    Room.objects.filter(pk=room.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    return room, sent


def owed(room: Room) -> tuple[bool, bool]:
    """(the hand-over's answer, whether the reaper lists the room)."""
    return (
        selectors.has_unanswered(room.pk),
        room.pk in selectors.unanswered_rooms(WITHIN, SETTLED),
    )


def test_each_mode_owes_a_reply_only_for_a_message_that_calls_for_one() -> None:
    always, _ = room_with("always", "hey bob", reply_first=True)
    chatter, _ = room_with("mention", "hey bob", "mail bob@claude.ai", reply_first=True)
    mention, _ = room_with("mention", "hey bob", "@Claude, help?", reply_first=True)
    quiet_auto, [no] = room_with("auto", "hey bob")
    ReplyDecision.objects.create(message=no, wanted=False, how="model")
    yes_auto, [yes] = room_with("auto", "what is a tide?")
    ReplyDecision.objects.create(message=yes, wanted=True, how="model")
    undecided_auto, _ = room_with("auto", "still deciding")
    assert owed(always) == (True, True)
    assert owed(chatter) == (False, False)
    assert owed(mention) == (True, True)
    assert owed(quiet_auto) == (False, False)
    assert owed(yes_auto) == (True, True)
    assert owed(undecided_auto) == (False, False)


def test_nothing_is_owed_once_a_reply_began_after_the_message() -> None:
    room, _ = room_with("mention", "@claude hi")
    Message.objects.create(room=room, role="assistant", text="")
    assert owed(room) == (False, False)


def test_a_reply_answers_everything_since_what_the_previous_one_answered() -> None:
    room, [first, second] = room_with("mention", "hey", "@claude hi")
    reply = Message.objects.create(room=room, role="assistant", in_reply_to=[first.pk, second.pk])
    late = Message.objects.create(room=room, role="user", text="said while it ran")
    after = Message.objects.create(room=room, role="user", text="@claude more")
    nxt = Message.objects.create(room=room, role="assistant")
    assert answered_ids(room.pk, nxt.pk) == [late.pk, after.pk]
    # Regenerated: the superseded reply no longer counts as the previous one.
    Message.objects.filter(pk=reply.pk).update(superseded=True)
    assert answered_ids(room.pk, nxt.pk) == [first.pk, second.pk, late.pk, after.pk]
