"""👍/👎 on Claude's replies counted per model, and auto-mode decisions, in the admin."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chatsite.conversation.feedback import per_model
from chatsite.conversation.models import ReplyDecision
from chatsite.rooms.models import Message, Reaction, Room

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("op", is_staff=True, is_superuser=True))
    return client


def test_thumbs_on_replies_are_counted_per_model(staff: Client) -> None:
    people = [User.objects.create_user(name) for name in ("ann", "ben", "cat")]
    room = Room.objects.create(slug="r", title="R", owner=people[0])
    ask = Message.objects.create(room=room, role="user", author=people[0], text="q")
    sonnet = [
        Message.objects.create(room=room, role="assistant", model="claude-sonnet-5-5", text=t)
        for t in ("a", "b")
    ]
    haiku = Message.objects.create(room=room, role="assistant", model="claude-haiku-5-5")
    for person in people:
        Reaction.objects.create(message=sonnet[0], user=person, emoji="👍")
    Reaction.objects.create(message=sonnet[1], user=people[0], emoji="👎")
    Reaction.objects.create(message=sonnet[1], user=people[1], emoji="❤️")
    Reaction.objects.create(message=haiku, user=people[2], emoji="👎")
    Reaction.objects.create(message=ask, user=people[1], emoji="👍")  # not a reply: not counted

    assert per_model() == [
        {"model": "claude-sonnet-5-5", "replies": 2, "thumbs_up": 3, "thumbs_down": 1},
        {"model": "claude-haiku-5-5", "replies": 1, "thumbs_up": 0, "thumbs_down": 1},
    ]
    page = staff.get("/admin/conversation/replyfeedback/")
    assert page.status_code == 200
    html = re.sub(r"\s+", " ", page.content.decode())
    assert "<td>claude-sonnet-5-5</td><td>2</td><td>3</td><td>1</td>" in html
    assert "<td>claude-haiku-5-5</td><td>1</td><td>0</td><td>1</td>" in html


def test_decisions_show_their_prompt_answer_and_cost(staff: Client) -> None:
    owner = User.objects.create_user("ann")
    room = Room.objects.create(slug="r", title="R", owner=owner, reply_mode="auto")
    message = Message.objects.create(room=room, role="user", author=owner, text="hm")
    decision = ReplyDecision.objects.create(
        message=message,
        wanted=False,
        how="model",
        model="claude-haiku-5-5",
        prompt="<chat>\nann: hm\n</chat>",
        answer="no",
        input_tokens=150,
        cost_usd="0.000155",
    )
    listing = staff.get("/admin/conversation/replydecision/").content.decode()
    assert "claude-haiku-5-5" in listing and "0.000155" in listing
    detail = staff.get(f"/admin/conversation/replydecision/{decision.pk}/change/")
    assert detail.status_code == 200 and "ann: hm" in detail.content.decode()
