"""Reply modes (SPEC §7) at unit level: frames in, frames out through the real ASGI app, the
in-memory layer and the real SDK against the fake Anthropic API, whose recorded requests show
what the model read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from chatsite.conversation.models import ReplyDecision
from chatsite.conversation.reply_modes import DECISION_MAX_TOKENS
from chatsite.llm.base import Usage
from chatsite.rooms.models import Message, Room
from chatsite.usage import ledger
from chatsite.usage.charging import record_usage
from chatsite.usage.store import reset_counters
from consumers.actions.conversation import deciding_idle
from tests.consumer_fixtures import *  # noqa: F403  (fixtures: fresh_process, alice, bob, room, connect, ...)
from tests.consumer_fixtures import Connect, Tab
from tests.fakes import Reply
from tests.fakes.anthropic_api import FakeAnthropic

pytestmark = pytest.mark.django_db(transaction=True)


async def set_mode(room: Room, mode: str) -> None:
    await Room.objects.filter(pk=room.pk).aupdate(reply_mode=mode)


async def say(tab: Tab, text: str) -> int:
    """Send `text`; the id of the stored message (from its message.created)."""
    await tab.say(text)
    created = await tab.until("message.created")
    assert created["message"]["text"] == text
    return int(created["message"]["id"])


async def heard(tab: Tab, seconds: float) -> list[str]:
    """The types of the frames (presence aside) that arrive within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    kinds: list[str] = []
    while (left := deadline - loop.time()) > 0:
        if await tab.comm.receive_nothing(timeout=left):
            break
        kind = (await tab.next())["type"]
        if kind != "presence":
            kinds.append(kind)
    return kinds


def request_text(body: dict[str, Any] | None) -> str:
    assert body is not None
    return json.dumps(body["messages"], ensure_ascii=False)


def reply_requests(fake: FakeAnthropic) -> list[dict[str, Any]]:
    """The bodies of reply requests (decisions ask for a few tokens only)."""
    return [
        r.body
        for r in fake.requests
        if r.body is not None and r.body.get("max_tokens") != DECISION_MAX_TOKENS
    ]


def decision_requests(fake: FakeAnthropic) -> list[dict[str, Any]]:
    return [
        r.body
        for r in fake.requests
        if r.body is not None and r.body.get("max_tokens") == DECISION_MAX_TOKENS
    ]


# --- mention ------------------------------------------------------------------------------


async def test_mention_mode_answers_only_a_mention_and_it_answers_both_messages(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
) -> None:
    await set_mode(room, "mention")
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    chatter = await say(a, "hey bob, you free saturday?")
    await b.until("message.created")
    assert await heard(b, 0.5) == [] and await heard(a, 0.1) == []
    assert use_fake_anthropic.requests == []
    assert await Message.objects.filter(role="assistant").acount() == 0
    for not_a_mention in ("mail me at bob@claude.ai", "@claudette is my cat"):
        await say(b, not_a_mention)
        await a.until("message.created")
    assert await heard(a, 0.5) == [] and use_fake_anthropic.requests == []

    mention = await say(b, "@Claude what should we do on saturday?")
    started = await a.until("generation.started")
    finished = await b.until("generation.finished", message_id=started["message_id"])
    assert finished["status"] == "complete"
    reply = await Message.objects.aget(pk=started["message_id"])
    assert reply.in_reply_to == [chatter, chatter + 1, chatter + 2, mention]
    [body] = reply_requests(use_fake_anthropic)
    context = request_text(body)
    # The earlier message is context, labelled with its author.
    assert "alice: hey bob, you free saturday?" in context
    assert "bob: @Claude what should we do on saturday?" in context


async def test_after_a_reply_only_a_message_that_calls_for_one_starts_the_next(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
) -> None:
    await set_mode(room, "mention")
    use_fake_anthropic.queue(Reply(chunks=[f"w{i} " for i in range(30)], delay=0.03))
    a = await connect("lounge", alice[1])
    first = await say(a, "@claude count slowly")
    started = await a.until("generation.started")
    chatter = await say(a, "meanwhile, bob, lunch?")  # stored while the reply runs
    await a.until("generation.finished", message_id=started["message_id"])
    assert await heard(a, 0.6) == []  # the hand-over starts nothing for chatter
    assert await Message.objects.filter(role="assistant").acount() == 1

    # A mention stored while a reply runs gets the next reply, which answers both.
    use_fake_anthropic.queue(Reply(chunks=[f"v{i} " for i in range(30)], delay=0.03))
    await say(a, "@claude again")
    second = await a.until("generation.started")
    mention = await say(a, "and @CLAUDE one more")
    await a.until("generation.finished", message_id=second["message_id"])
    third = await a.until("generation.started")
    await a.until("generation.finished", message_id=third["message_id"])
    replies = [m async for m in Message.objects.filter(role="assistant").order_by("id")]
    assert [r.in_reply_to for r in replies] == [[first], [chatter, chatter + 1], [mention]]


async def test_always_mode_answers_every_message_with_its_id(
    connect: Connect, room: Room, alice: tuple[User, str], use_fake_anthropic: FakeAnthropic
) -> None:
    a = await connect("lounge", alice[1])
    sent = await say(a, "plain words, no mention")
    started = await a.until("generation.started")
    await a.until("generation.finished", message_id=started["message_id"])
    assert (await Message.objects.aget(pk=started["message_id"])).in_reply_to == [sent]


# --- auto ---------------------------------------------------------------------------------


async def test_auto_mode_asks_the_cheap_model_and_a_no_starts_nothing(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
    settings: Any,
) -> None:
    await set_mode(room, "auto")
    a = await connect("lounge", alice[1])
    b = await connect("lounge", bob[1])
    use_fake_anthropic.queue(Reply(chunks=["no"], input_tokens=180, output_tokens=1))
    chatter = await say(a, "hey bob, you free saturday?")
    await b.until("message.created")
    await deciding_idle()
    assert await heard(b, 0.4) == []
    [asked] = decision_requests(use_fake_anthropic)
    assert asked["model"] == settings.LLM_SUMMARY_MODEL
    assert "alice: hey bob, you free saturday?" in request_text(asked)
    decision = await ReplyDecision.objects.aget(message_id=chatter)
    assert (decision.wanted, decision.how, decision.answer) == (False, "model", "no")
    assert "hey bob, you free saturday?" in decision.prompt
    assert (decision.input_tokens, decision.output_tokens) == (180, 1)
    assert decision.cost_usd > 0  # the haiku price from the table, charged to the room
    entry = await sync_to_async(
        lambda: ledger.UsageEntry.objects.get(kind="decision", room_id=room.pk)
    )()
    assert entry.model == settings.LLM_SUMMARY_MODEL and entry.cost_usd == decision.cost_usd

    use_fake_anthropic.queue(Reply(chunks=["yes"]))
    question = await say(b, "does anyone know how tides work?")
    started = await a.until("generation.started")
    await a.until("generation.finished", message_id=started["message_id"])
    reply = await Message.objects.aget(pk=started["message_id"])
    assert reply.in_reply_to == [chatter, question]
    assert len(reply_requests(use_fake_anthropic)) == 1

    mention = await say(a, "thanks @claude")  # a mention never asks the cheap model
    started = await a.until("generation.started")
    await a.until("generation.finished", message_id=started["message_id"])
    assert len(decision_requests(use_fake_anthropic)) == 2
    assert not await ReplyDecision.objects.filter(message_id=mention).aexists()


async def test_auto_mode_under_demo_follows_the_documented_rule(
    connect: Connect, room: Room, alice: tuple[User, str], use_demo: None, settings: Any
) -> None:
    settings.DEMO_WORDS_PER_SECOND = 2000
    await set_mode(room, "auto")
    a = await connect("lounge", alice[1])
    quiet = await say(a, "who brings the cake?")
    await deciding_idle()
    assert await heard(a, 0.4) == []
    named = await say(a, "Claude, who invented the cake?")
    started = await a.until("generation.started")
    await a.until("generation.finished", message_id=started["message_id"])
    decisions = [d async for d in ReplyDecision.objects.order_by("message_id")]
    assert [(d.message_id, d.wanted, d.how) for d in decisions] == [
        (quiet, False, "demo"),
        (named, True, "demo"),
    ]


# --- budgets count replies, not chatter ------------------------------------------------------


async def spend(room: Room, user: User, usd_worth_of_output: int) -> None:
    """Charge a reply that cost `user` and the room real money (ledger and budgets)."""
    usage = Usage(output_tokens=usd_worth_of_output * 70_000)  # $15 / million on sonnet
    await record_usage(
        ledger.Call("reply", room.pk, "claude-sonnet-5-5", "anthropic", usage, payers=(user.pk,))
    )


@pytest.mark.parametrize("mode", ["mention", "auto"])
async def test_over_budget_only_a_message_that_calls_for_a_reply_is_refused(
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    use_fake_anthropic: FakeAnthropic,
    mode: str,
) -> None:
    reset_counters()
    await set_mode(room, mode)
    await spend(room, alice[0], 2)  # over the $1.00 default user limit
    a = await connect("lounge", alice[1])
    chatter = await say(a, "just talking to people")
    await deciding_idle()
    assert await heard(a, 0.4) == []
    await a.say("@claude please answer")
    error = await a.until("error")
    assert error["code"] == "budget_exceeded" and error["retry_after"] > 0
    assert await Message.objects.filter(role="user").acount() == 1
    assert use_fake_anthropic.requests == []  # over budget, auto does not even ask
    if mode == "auto":
        decision = await ReplyDecision.objects.aget(message_id=chatter)
        assert (decision.wanted, decision.how) == (False, "budget")


# --- new rooms ---------------------------------------------------------------------------


async def test_new_rooms_take_the_default_reply_mode(
    alice: tuple[User, str], settings: Any
) -> None:
    settings.CHAT_DEFAULT_REPLY_MODE = "mention"

    def create() -> str:
        client = Client()
        client.force_login(alice[0])
        assert client.post("/rooms/quiet-place/").status_code == 302
        return Room.objects.get(slug="quiet-place").reply_mode

    assert await sync_to_async(create)() == "mention"
