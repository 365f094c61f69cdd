"""Long rooms through the real SDKs and the fake servers: a long room is folded into a summary
in the background, the next request carries it, replies never wait for it, the prompt prefix
stays stable between folds, and one summarizer runs per room across processes."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from chatsite.llm.summary import SUMMARIZER_SYSTEM, SUMMARY_HEADING, SUMMARY_MAX_TOKENS
from chatsite.rooms.models import Message, Room
from consumers.state import SharedState, memory_state, redis_state
from consumers.summarizer import LOCK_TTL, Summarizer, summarizer
from tests.consumer_fixtures import *  # noqa: F403
from tests.consumer_fixtures import INFERENCE_MODEL_ID, Connect, Tab
from tests.fakes import Fail, FakeAnthropic, FakeOpenAI, Reply

pytestmark = pytest.mark.django_db(transaction=True)

EPHEMERAL = {"type": "ephemeral"}
SUMMARY_TEXT = "- bob and alice traded words and answers"
# Budget 4000 - 200 - 400 = 3400 tokens; a fold starts above 60 % of it.
WINDOW, MAX_TOKENS = 4000, 200


@pytest.fixture
def small_window(settings: Any) -> None:
    settings.LLM_CONTEXT_WINDOW = WINDOW
    settings.LLM_MAX_TOKENS = MAX_TOKENS


async def seed(room: Room, alice: User, bob: User, exchanges: int = 12) -> list[Message]:
    """A long stored conversation: about 2,800 estimated tokens for 12 exchanges (the room's
    measured density, 0.8 for such plain words, raises the fold threshold to 2,550)."""
    rows = []
    for i in range(exchanges):
        author = bob if i % 2 == 0 else alice
        text = f"q{i} " + "word " * 65
        rows.append(Message(room=room, role="user", author=author, text=text))
        rows.append(Message(room=room, role="assistant", text=f"a{i} " + "answer " * 65))
    created = await Message.objects.abulk_create(rows)  # one commit, not 24
    await Room.objects.filter(pk=room.pk).aupdate(system_prompt="Be brief.")
    assert all(m.pk for m in created)
    return created


def texts(body: dict[str, Any]) -> list[str]:
    return [m["content"][0]["text"] for m in body["messages"]]


def without_cache_marks(body: dict[str, Any]) -> dict[str, Any]:
    """The body as the cache sees it: breakpoints mark positions, they are not content."""
    strip = [{k: v for k, v in b.items() if k != "cache_control"} for b in body.get("system", [])]
    messages = [
        {
            "role": m["role"],
            "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]],
        }
        for m in body["messages"]
    ]
    return {"system": strip, "messages": messages}


async def ask(tab: Tab, text: str) -> dict[str, Any]:
    await tab.send({"type": "message.send", "text": text})
    started = await tab.until("generation.started", timeout=20)
    return await tab.until("generation.finished", timeout=20, message_id=started["message_id"])


async def test_a_long_room_is_summarized_in_the_background_and_the_next_request_carries_it(
    small_window: None,
    use_fake_anthropic: FakeAnthropic,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
) -> None:
    fake = use_fake_anthropic
    seeded = await seed(room, alice[0], bob[0])
    fake.queue(
        Reply(chunks=["Answer one."]),
        # The summarizer's call: slow, so that the room goes on while it runs.
        Reply(chunks=["- bob and alice ", "traded words and answers"], first_delay=2.5),
        Reply(chunks=["Answer two."]),
    )
    a = await connect("lounge", alice[1])

    first = await ask(a, "newest question")
    assert first["text"] == "Answer one."
    [reply_request, summary_request] = await fake.await_requests(2)
    assert reply_request.body is not None and summary_request.body is not None
    # The reply that triggered the fold carried the whole history: nothing was trimmed.
    assert texts(reply_request.body)[0] == "bob: " + seeded[0].text
    assert summary_request.body["model"] == "claude-haiku-5-5"
    assert summary_request.body["max_tokens"] == SUMMARY_MAX_TOKENS
    assert summary_request.body["system"] == [
        {"type": "text", "text": SUMMARIZER_SYSTEM, "cache_control": EPHEMERAL}
    ]
    [prompt] = texts(summary_request.body)
    assert prompt.startswith(f'<new_messages>\n<message from="bob">\n{seeded[0].text}\n</message>')
    assert "newest question" not in prompt and "Answer one." not in prompt

    # While the summarizer works, the room goes on: this reply does not wait for it.
    second = await ask(a, "second question")
    assert second["text"] == "Answer two." and second["status"] == "complete"
    assert not a.of_type("room.updated")
    assert (await Room.objects.aget(pk=room.pk)).summary == ""
    second_body = fake.requests[2].body
    assert second_body is not None
    assert second_body["system"] == [
        {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}
    ]

    # The fold lands: stored on the room, announced to its tabs.
    updated = await a.until("room.updated", timeout=20)
    stored = await Room.objects.aget(pk=room.pk)
    assert stored.summary == SUMMARY_TEXT
    assert updated["room"]["summary_upto_id"] == stored.summary_upto_id
    folded_last = await Message.objects.aget(pk=stored.summary_upto_id)
    after = await Message.objects.filter(room=room, id__gt=stored.summary_upto_id).afirst()
    assert after is not None and after.role == "user"
    assert seeded[0].pk <= folded_last.pk < seeded[-1].pk
    assert f"{folded_last.text}\n</message>\n</new_messages>" in prompt

    # The next request sends the summary instead of the folded turns.
    await ask(a, "third question")
    body = fake.requests[-1].body
    assert body is not None
    assert body["system"] == [
        {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL},
        {"type": "text", "text": f"{SUMMARY_HEADING}\n{SUMMARY_TEXT}", "cache_control": EPHEMERAL},
    ]
    label = "alice" if after.author_id == alice[0].pk else "bob"
    assert texts(body)[0] == f"{label}: {after.text}"
    assert texts(body)[-1] == "alice: third question"
    assert all(seeded[0].text not in t for t in texts(body))
    assert body["messages"][-2]["content"][0]["cache_control"] == EPHEMERAL
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]

    # Between folds the prefix only grows at its end, so the cache keeps hitting.
    await ask(a, "fourth question")
    await summarizer().idle()
    later = fake.requests[-1].body
    assert later is not None and len(fake.requests) == 5  # no second fold yet
    before, now = without_cache_marks(body), without_cache_marks(later)
    assert now["system"] == before["system"]
    assert now["messages"][: len(before["messages"])] == before["messages"]


async def test_between_folds_each_request_extends_the_previous_one(
    use_fake_anthropic: FakeAnthropic, connect: Connect, room: Room, alice: tuple[User, str]
) -> None:
    await Room.objects.filter(pk=room.pk).aupdate(system_prompt="Be brief.")
    a = await connect("lounge", alice[1])
    for i in range(4):
        await ask(a, f"question {i}")
    bodies = [without_cache_marks(r.body) for r in use_fake_anthropic.requests if r.body]
    assert len(bodies) == 4
    for earlier, later in itertools.pairwise(bodies):
        assert later["system"] == earlier["system"]
        assert later["messages"][: len(earlier["messages"])] == earlier["messages"]
        assert len(later["messages"]) == len(earlier["messages"]) + 2


async def test_heroku_rooms_are_summarized_by_the_attached_model(
    small_window: None,
    use_fake_heroku: FakeOpenAI,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
) -> None:
    fake = use_fake_heroku
    await seed(room, alice[0], bob[0])
    fake.queue(Reply(chunks=["Answer one."]), Reply(chunks=[SUMMARY_TEXT]))
    a = await connect("lounge", alice[1])
    await ask(a, "newest question")
    updated = await a.until("room.updated", timeout=20)
    assert updated["room"]["summary_upto_id"] > 0
    summary_body = fake.requests[1].body
    assert summary_body is not None
    assert summary_body["model"] == INFERENCE_MODEL_ID
    assert summary_body["max_tokens"] == SUMMARY_MAX_TOKENS
    assert summary_body["stream"] is True
    assert [m["role"] for m in summary_body["messages"]] == ["system", "user"]
    assert summary_body["messages"][0]["content"] == SUMMARIZER_SYSTEM
    assert isinstance(summary_body["messages"][1]["content"], str)
    await ask(a, "next question")
    body = fake.requests[-1].body
    assert body is not None
    assert body["messages"][0] == {
        "role": "system",
        "content": f"Be brief.\n\n{SUMMARY_HEADING}\n{SUMMARY_TEXT}",
    }
    assert all(isinstance(m["content"], str) for m in body["messages"])


async def test_demo_rooms_get_a_deterministic_offline_summary(
    small_window: None,
    use_demo: None,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
) -> None:
    await seed(room, alice[0], bob[0])
    a = await connect("lounge", alice[1])
    await ask(a, "newest question")
    updated = await a.until("room.updated", timeout=20)
    stored = await Room.objects.aget(pk=room.pk)
    assert updated["room"]["summary_upto_id"] == stored.summary_upto_id > 0
    folded = await Message.objects.filter(room=room, id__lte=stored.summary_upto_id).acount()
    lines = stored.summary.splitlines()
    # A heading, then one line a folded message, the newest 12 of them.
    assert lines[0] == "Earlier in this room (demo summary):"
    assert len(lines) == 1 + min(12, folded)
    assert lines[-1] == (
        f"- Claude: a{folded // 2 - 1} answer answer answer answer answer answer answer "
        "answer answer answer answer…"
    )


async def test_a_failed_summary_changes_nothing_and_is_tried_again_later(
    small_window: None,
    use_fake_anthropic: FakeAnthropic,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
) -> None:
    fake = use_fake_anthropic
    await seed(room, alice[0], bob[0])
    fake.queue(Reply(chunks=["Answer one."]), Fail(500), Reply(chunks=["Answer two."]))
    a = await connect("lounge", alice[1])
    await ask(a, "newest question")
    await fake.await_requests(2)
    await summarizer().idle()
    assert room.pk in summarizer().retry_at
    second = await ask(a, "second question")
    assert second["text"] == "Answer two."
    await summarizer().idle()
    # Within the back-off nobody asks again; the reply was trimmed to the budget instead.
    assert len(fake.requests) == 3
    stored = await Room.objects.aget(pk=room.pk)
    assert (stored.summary, stored.summary_upto_id) == ("", 0)


@pytest.fixture(params=["memory", "redis"])
def shared(request: pytest.FixtureRequest) -> SharedState:
    """The shared state both "processes" use: in-process memory, or a real Redis."""
    if request.param == "memory":
        state = memory_state()
    else:
        server = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        state = redis_state(
            server.url, prefix, django_settings.REDIS_OPTIONS or {"socket_timeout": 15}
        )
    return state


async def test_one_summarizer_per_room_across_processes(
    shared: SharedState,
    small_window: None,
    use_fake_anthropic: FakeAnthropic,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
) -> None:
    fake = use_fake_anthropic
    rows = await seed(room, alice[0], bob[0], exchanges=13)
    fake.queue(Reply(chunks=[SUMMARY_TEXT], first_delay=0.5))
    process_a, process_b = Summarizer(shared), Summarizer(shared)
    results = await asyncio.gather(
        process_a.fold(room.pk, rows[-1].pk), process_b.fold(room.pk, rows[-1].pk)
    )
    assert sorted(results) == [False, True]
    assert len(fake.requests) == 1
    # The lock is free again; the room now fits, so nothing more happens.
    assert await process_b.fold(room.pk, rows[-1].pk) is False
    token = uuid.uuid4().hex
    assert await shared.summary_locks.acquire(room.pk, token, LOCK_TTL)
    await shared.summary_locks.release(room.pk, token)
    assert len(fake.requests) == 1


async def test_the_summary_lock_is_owned_and_expires(shared: SharedState) -> None:
    assert await shared.summary_locks.acquire(7, "one", 0.3)
    assert not await shared.summary_locks.acquire(7, "two", 0.3)
    await shared.summary_locks.release(7, "two")  # not the owner: no effect
    assert not await shared.summary_locks.acquire(7, "two", 0.3)
    assert not await shared.reply_locks.held(7)  # a different lock from the reply's
    deadline = time.monotonic() + 5
    while not await shared.summary_locks.acquire(7, "two", 10):
        assert time.monotonic() < deadline, "the summary lock never expired"
        await asyncio.sleep(0.05)
    await shared.summary_locks.release(7, "two")
    assert await shared.summary_locks.acquire(7, "three", 10)
