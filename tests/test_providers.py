"""The three providers through the real SDKs against the fake servers on loopback: exact request
bodies, usage (cache tokens included), error mapping, the demo's promises, and the same
conversation streamed to a room identically by each provider."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from chatsite.llm.anthropic_provider import AnthropicProvider
from chatsite.llm.base import ChatRequest, StreamEnd, StreamEvent, TextDelta, Turn, Usage
from chatsite.llm.demo_provider import DemoProvider
from chatsite.llm.errors import ConfigurationError, LLMError, RetryableError, StreamBrokenError
from chatsite.llm.heroku_provider import HerokuProvider
from chatsite.llm.registry import get_provider
from chatsite.rooms.models import Message, Room
from consumers.summarizer import Summarizer
from tests.consumer_fixtures import *  # noqa: F403
from tests.consumer_fixtures import INFERENCE_KEY, INFERENCE_MODEL_ID, Connect, Tab
from tests.fakes import Fail, FakeAnthropic, FakeOpenAI, Reply
from tests.support import texts

# Consumer tests: replies are stored from the runner's threads, so rows must be committed.
in_rooms = pytest.mark.django_db(transaction=True)
EPHEMERAL = {"type": "ephemeral"}
SECRET = "sk-ant-test-secret"
SUMMARY = "Summary of the earlier conversation:\n- alice likes tea"


def conversation(**overrides: Any) -> ChatRequest:
    fields: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "system": "Be brief.",
        "summary": SUMMARY,
        "turns": (
            Turn("user", "alice: hi"),
            Turn("assistant", "Hello", cache_breakpoint=True),
            Turn("user", "bob: and me?"),
        ),
        "max_tokens": 321,
        "latest_message": "and me?",
    }
    return ChatRequest(**{**fields, **overrides})


async def collect(provider: Any, request: ChatRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


def ending(events: list[StreamEvent]) -> StreamEnd:
    end = events[-1]
    assert isinstance(end, StreamEnd)
    return end


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- Anthropic ------------------------------------------------------------------------------


async def test_anthropic_request_body_is_exact(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.queue(Reply(chunks=["Hi ", "both."]))
    provider = AnthropicProvider("test-key", fake_anthropic.base_url)
    events = await collect(provider, conversation())
    assert text_of(events) == "Hi both." and ending(events).stop_reason == "end_turn"
    [sent] = fake_anthropic.requests
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body == {
        "model": "claude-sonnet-5-5",
        "max_tokens": 321,
        "stream": True,
        "system": [
            {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL},
            {"type": "text", "text": SUMMARY, "cache_control": EPHEMERAL},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "alice: hi"}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Hello", "cache_control": EPHEMERAL}],
            },
            {"role": "user", "content": [{"type": "text", "text": "bob: and me?"}]},
        ],
    }


async def test_anthropic_usage_includes_cache_tokens(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.queue(
        Reply(
            chunks=["a", "b", "c"],
            input_tokens=12,
            output_tokens=3,
            cache_creation_input_tokens=1500,
            cache_read_input_tokens=9000,
        )
    )
    events = await collect(AnthropicProvider("k", fake_anthropic.base_url), conversation())
    assert ending(events).usage == Usage(12, 3, 1500, 9000)


async def test_anthropic_summary_model_is_the_cheap_one(settings: Any) -> None:
    from chatsite.llm.registry import get_provider

    settings.LLM_PROVIDER = "anthropic"
    settings.ANTHROPIC_API_KEY = "k"
    get_provider.cache_clear()
    try:
        assert get_provider().summary_model() == "claude-haiku-5-5"
    finally:
        get_provider.cache_clear()


# --- Heroku Managed Inference (OpenAI-style) --------------------------------------------------


def heroku(fake: FakeOpenAI, stall_timeout: float = 30.0) -> HerokuProvider:
    return HerokuProvider(fake.base_url, INFERENCE_KEY, INFERENCE_MODEL_ID, stall_timeout)


async def test_heroku_request_body_is_exact(fake_openai: FakeOpenAI) -> None:
    fake_openai.reset()
    fake_openai.queue(Reply(chunks=["Hi ", "both."]))
    events = await collect(heroku(fake_openai), conversation(model="ignored"))
    assert text_of(events) == "Hi both." and ending(events).stop_reason == "end_turn"
    [sent] = fake_openai.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {INFERENCE_KEY}"
    assert sent.body == {
        "model": INFERENCE_MODEL_ID,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 321,
        "messages": [
            {"role": "system", "content": "Be brief.\n\n" + SUMMARY},
            {"role": "user", "content": "alice: hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "bob: and me?"},
        ],
    }


async def test_heroku_usage_comes_from_the_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.reset()
    fake_openai.queue(
        Reply(chunks=["x"] * 4, input_tokens=500, output_tokens=4, cache_read_input_tokens=300)
    )
    events = await collect(heroku(fake_openai), conversation())
    # OpenAI counts cached prompt tokens inside prompt_tokens; Anthropic's terms split them.
    assert ending(events).usage == Usage(200, 4, 0, 300)


async def test_heroku_length_is_max_tokens(fake_openai: FakeOpenAI) -> None:
    fake_openai.reset()
    fake_openai.queue(Reply(chunks=["cut"], stop_reason="max_tokens"))
    assert ending(await collect(heroku(fake_openai), conversation())).stop_reason == "max_tokens"


# --- errors, mapped into chatsite.llm.errors by both adapters ----------------------------------


ERROR_CASES = [
    (Fail(429, retry_after=2), RetryableError, "rate_limited", 0),
    (Fail(503), RetryableError, "server_error", 0),
    (Fail(529), RetryableError, "overloaded", 0),
    (Fail(408), RetryableError, "server_error", 0),
    (Fail(409), RetryableError, "server_error", 0),
    (Fail(500), RetryableError, "server_error", 0),
    (Fail(400), ConfigurationError, None, 0),
    (Fail(401), ConfigurationError, None, 0),
    (Fail(403), ConfigurationError, None, 0),
    (Fail(404), ConfigurationError, None, 0),
    (Fail(413), ConfigurationError, None, 0),
    (Fail(418), StreamBrokenError, None, 0),  # undocumented: not a configuration problem
    (Reply(chunks=["a", "b", "c"], then="error", after=2), RetryableError, "overloaded", 2),
    (Reply(chunks=["a", "b", "c"], then="cut", after=2), RetryableError, "connection", 2),
    (Reply(chunks=["a", "b", "c"], then="stall", after=1), RetryableError, "connection", 1),
    (Reply(chunks=["a", "b", "c"], then="truncate", after=2), StreamBrokenError, None, 2),
]


@pytest.mark.parametrize("which", ["anthropic", "heroku"])
@pytest.mark.parametrize(("scenario", "error", "reason", "deltas"), ERROR_CASES)
async def test_failures_map_into_the_project_error_tree(
    which: str,
    scenario: Any,
    error: type[LLMError],
    reason: str | None,
    deltas: int,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.reset()
    if which == "anthropic":
        fake_anthropic.queue(scenario)
        provider: Any = AnthropicProvider(SECRET, fake_anthropic.base_url, stall_timeout=0.3)
    else:
        fake_openai.queue(scenario)
        provider = heroku(fake_openai, stall_timeout=0.3)
    seen: list[StreamEvent] = []
    with pytest.raises(LLMError) as caught:
        async for event in provider.stream(conversation()):
            seen.append(event)
    assert type(caught.value) is error
    assert caught.value.__cause__ is not None or error is StreamBrokenError
    if reason is not None:
        assert isinstance(caught.value, RetryableError) and caught.value.reason == reason
    if isinstance(scenario, Fail) and scenario.retry_after is not None:
        assert isinstance(caught.value, RetryableError) and caught.value.retry_after == 2.0
    assert len([e for e in seen if isinstance(e, TextDelta)]) == deltas
    assert SECRET not in caught.value.detail and INFERENCE_KEY not in caught.value.detail


# --- demo --------------------------------------------------------------------------------------


async def test_demo_is_offline_deterministic_and_paced() -> None:
    provider = DemoProvider(words_per_second=400)
    assert provider.model_for("claude-sonnet-5-5") == "demo" and provider.selectable_models() == []
    message = "Tell me about tide pools, please, in some detail" * 3
    started = time.monotonic()
    first = await collect(provider, conversation(latest_message=message))
    elapsed = time.monotonic() - started
    second = await collect(provider, conversation(latest_message=message))
    assert first == second
    text = text_of(first)
    words = len(text.split())
    assert 60 <= words <= 120
    assert f"“{message[:80].strip()}”" in text
    assert text.startswith("## ") and "\n- " in text and "```" in text
    assert ending(first) == StreamEnd("end_turn", Usage(output_tokens=words))
    assert elapsed >= 0.9 * words / 400  # one word per 1/words_per_second


# --- the same conversation through each provider, as the room sees it -------------------------

CHUNKS = ["Tide ", "pools ", "are ", "rocky ", "hollows ", "the ", "sea ", "refills."]


@pytest.fixture(params=["anthropic", "heroku", "demo"])
def provider_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "anthropic":
        fake: Any = request.getfixturevalue("use_fake_anthropic")
    elif name == "heroku":
        fake = request.getfixturevalue("use_fake_heroku")
    else:
        request.getfixturevalue("use_demo")
        return name
    fake.default = Reply(chunks=CHUNKS, delay=0.005, cache_read_input_tokens=8)
    return name


@in_rooms
async def test_the_same_conversation_streams_identically_through_each_provider(
    provider_name: str,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
) -> None:
    a: Tab = await connect("lounge", alice[1])
    b: Tab = await connect("lounge", bob[1])
    expected_model = {
        "anthropic": "claude-sonnet-5-5",
        "heroku": INFERENCE_MODEL_ID,
        "demo": "demo",
    }[provider_name]
    for turn, text in enumerate(["What are tide pools?", "And who lives there?"]):
        await a.send({"type": "message.send", "text": text, "client_msg_id": f"c{turn}"})
        started = await a.until("generation.started", timeout=20)
        assert started["model"] == expected_model
        reply_id = started["message_id"]
        for tab in (a, b):
            fin = await tab.until("generation.finished", timeout=20, message_id=reply_id)
            deltas = tab.deltas(reply_id)
            assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
            assert fin["text"] == "".join(d["text"] for d in deltas)
            assert (fin["status"], fin["stop_reason"], fin["error"]) == (
                "complete",
                "end_turn",
                None,
            )
        stored = await Message.objects.aget(pk=reply_id)
        assert stored.text == fin["text"] and stored.model == expected_model
        assert stored.provider == provider_name
        usage = fin["usage"]
        assert (
            stored.input_tokens,
            stored.output_tokens,
            stored.cache_creation_input_tokens,
            stored.cache_read_input_tokens,
        ) == (
            usage["input_tokens"],
            usage["output_tokens"],
            usage["cache_creation_input_tokens"],
            usage["cache_read_input_tokens"],
        )
        if provider_name == "demo":
            assert text in fin["text"] and usage["output_tokens"] == len(fin["text"].split())
        else:
            assert fin["text"] == "".join(CHUNKS)
            assert usage["output_tokens"] == len(CHUNKS) and usage["input_tokens"] > 0
            assert usage["cache_read_input_tokens"] == 8
    await a.send({"type": "sync"})
    room_data = (await a.until("room.snapshot"))["room"]
    assert room_data["provider"] == provider_name and room_data["model"] == expected_model
    assert room_data["models"] == (
        ["claude-sonnet-5-5", "claude-haiku-5-5"] if provider_name == "anthropic" else []
    )
    assert room_data["summary_upto_id"] == 0


@in_rooms
async def test_heroku_room_sends_labelled_plain_string_history(
    use_fake_heroku: FakeOpenAI, connect: Connect, room: Room, alice: tuple[User, str]
) -> None:
    await Room.objects.filter(pk=room.pk).aupdate(system_prompt="Be brief.")
    a = await connect("lounge", alice[1])
    for text in ["first", "second"]:
        await a.send({"type": "message.send", "text": text})
        await a.until("generation.finished", timeout=20)
    body = use_fake_heroku.requests[-1].body
    assert body is not None
    assert body["model"] == INFERENCE_MODEL_ID and body["max_tokens"] == 1024
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert all(isinstance(m["content"], str) for m in body["messages"])
    assert body["messages"][0]["content"] == "Be brief."
    assert body["messages"][1]["content"] == "alice: first"
    assert body["messages"][3]["content"] == "alice: second"


@in_rooms
async def test_heroku_rooms_have_one_fixed_model(
    use_fake_heroku: FakeOpenAI, connect: Connect, room: Room, alice: tuple[User, str]
) -> None:
    a = await connect("lounge", alice[1])
    await a.send({"type": "room.update", "model": "claude-haiku-5-5"})
    refused = await a.until("error")
    assert refused["code"] == "invalid_message" and "one fixed model" in refused["message"]


@in_rooms
async def test_owners_pick_from_the_allow_list_minus_deprecated_models(
    use_fake_anthropic: FakeAnthropic,
    settings: Any,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
) -> None:
    settings.LLM_ALLOWED_MODELS = ["claude-sonnet-4-5", "claude-sonnet-5-5", "claude-haiku-5-5"]
    await Room.objects.filter(pk=room.pk).aupdate(model="claude-sonnet-4-5")
    a = await connect("lounge", alice[1])
    await a.send({"type": "sync"})
    snapshot = await a.until("room.snapshot")
    assert snapshot["room"]["models"] == ["claude-sonnet-5-5", "claude-haiku-5-5"]
    # A room left on a deprecated model is answered by the (current) default.
    assert snapshot["room"]["model"] == "claude-sonnet-5-5"
    await a.send({"type": "room.update", "model": "claude-sonnet-4-5"})
    refused = await a.until("error")
    assert refused["code"] == "invalid_message"
    assert "deprecated" in refused["message"] and "November 30th, 2026" in refused["message"]
    await a.send({"type": "room.update", "model": "claude-haiku-5-5", "system_prompt": "Rhyme."})
    updated = await a.until("room.updated")
    assert updated["room"]["model"] == "claude-haiku-5-5"
    assert updated["room"]["system_prompt"] == "Rhyme."
    await a.send({"type": "message.send", "text": "hello"})
    await a.until("generation.finished", timeout=20)
    body = use_fake_anthropic.requests[-1].body
    assert body is not None and body["model"] == "claude-haiku-5-5"
    assert body["system"] == [{"type": "text", "text": "Rhyme.", "cache_control": EPHEMERAL}]


def reply_frames(tab: Tab, reply_id: int) -> list[dict[str, Any]]:
    return [f for f in tab.frames if f.get("message_id") == reply_id]


@in_rooms
async def test_one_room_switches_provider_by_configuration_alone_and_streams_alike(
    settings: Any,
    use_fake_anthropic: FakeAnthropic,
    use_fake_heroku: FakeOpenAI,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
    bob: tuple[User, str],
) -> None:
    for fake in (use_fake_anthropic, use_fake_heroku):
        fake.default = Reply(
            chunks=CHUNKS, cache_creation_input_tokens=5, cache_read_input_tokens=8
        )
    a: Tab = await connect("lounge", alice[1])
    b: Tab = await connect("lounge", bob[1])
    seen: dict[str, list[dict[str, Any]]] = {}
    for turn, name in enumerate(["anthropic", "heroku", "demo"]):
        settings.LLM_PROVIDER = name  # nothing else changes: the same room, tabs and history
        get_provider.cache_clear()
        await a.send({"type": "sync"})
        snapshot = await a.until("room.snapshot")
        assert snapshot["room"]["provider"] == name
        await a.say(f"Question {turn} about tide pools?")
        reply_id = (await a.until("generation.started", timeout=20))["message_id"]
        await b.until("generation.finished", timeout=20, message_id=reply_id)
        await a.until("generation.finished", timeout=20, message_id=reply_id)
        seen[name] = reply_frames(b, reply_id)
        assert reply_frames(a, reply_id) == seen[name], name  # both tabs, the same frames

    def shape(frames: list[dict[str, Any]]) -> list[tuple[str, frozenset[str]]]:
        kinds = [(f["type"], frozenset(f)) for f in frames]
        deltas = [k for k in kinds if k[0] == "generation.delta"]
        return [kinds[0], *deltas[:1], kinds[-1]] if deltas else kinds

    # Every provider: started, deltas numbered 1..n, one finished with the same fields.
    for name, frames in seen.items():
        assert [f["type"] for f in frames[:1]] == ["generation.started"], name
        assert frames[-1]["type"] == "generation.finished", name
        seqs = [f["seq"] for f in frames if f["type"] == "generation.delta"]
        assert seqs == list(range(1, len(seqs) + 1)), name
        assert shape(frames) == shape(seen["anthropic"]), name
        assert frames[-1]["status"] == "complete" and frames[-1]["stop_reason"] == "end_turn"
    # The two remote providers answered the same words, in the same frames' text.
    anthropic_end, heroku_end = seen["anthropic"][-1], seen["heroku"][-1]
    assert anthropic_end["text"] == heroku_end["text"] == "".join(CHUNKS)
    assert anthropic_end["usage"]["cache_creation_input_tokens"] == 5
    assert heroku_end["usage"]["cache_creation_input_tokens"] == 0  # OpenAI-style: no such count
    assert anthropic_end["usage"]["cache_read_input_tokens"] == 8
    assert heroku_end["usage"]["cache_read_input_tokens"] == 8
    stored = {m.provider: m async for m in Message.objects.filter(role="assistant").order_by("id")}
    assert set(stored) == {"anthropic", "heroku", "demo"}
    assert stored["anthropic"].cache_creation_input_tokens == 5
    assert stored["anthropic"].cache_read_input_tokens == 8
    assert (stored["heroku"].model, stored["demo"].model) == (INFERENCE_MODEL_ID, "demo")
    # The history carried across the switch: Heroku's request holds the Anthropic turn.
    heroku_body = use_fake_heroku.requests[-1].body
    assert heroku_body is not None
    assert [m["role"] for m in heroku_body["messages"][-3:]] == ["user", "assistant", "user"]
    assert heroku_body["messages"][-2]["content"] == "".join(CHUNKS)


# --- the token budget against real token counts ----------------------------------------------

# One of each kind the estimate must cover, then dense text a newer tokenizer counts higher.
CONVERSATION = [
    texts.text_of("prose", 300),
    texts.text_of("python", 400),
    texts.text_of("japanese", 200),
    texts.text_of("emoji", 200),
    texts.DENSE["base64 key"][:600],
    texts.text_of("accents", 300),
    texts.text_of("korean", 200),
    texts.DENSE["random characters"][:600],
]


@in_rooms
@pytest.mark.parametrize("which", ["anthropic", "heroku"])
@pytest.mark.parametrize("token_scale", [1.0, 2.0])
async def test_no_request_exceeds_the_window_as_the_model_counts_it(
    which: str,
    token_scale: float,
    request: pytest.FixtureRequest,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
) -> None:
    """The fake counts input with Claude's published tokenizer (times `token_scale`: 2.0
    plays a newer model's denser tokenizer) and refuses, as the real APIs do, any request whose
    input plus max_tokens exceeds its window: here the room's LLM_CONTEXT_WINDOW."""
    fake: Any = request.getfixturevalue(f"use_fake_{which}")
    # No fold lands (as when the summarizer keeps failing): trimming alone keeps the budget.
    monkeypatch.setattr(Summarizer, "after_reply", lambda *args, **kwargs: None)
    settings.LLM_CONTEXT_WINDOW = 2500
    settings.LLM_MAX_TOKENS = 200
    fake.context_window = 2500
    fake.token_scale = token_scale
    fake.default = Reply(chunks=["A fairly long answer that keeps going. "] * 30, delay=0)
    await Room.objects.filter(pk=room.pk).aupdate(system_prompt="Answer in English. " * 10)
    await Room.objects.filter(pk=room.pk).aupdate(summary="- earlier: alice asked about tea")
    a = await connect("lounge", alice[1])
    for text in CONVERSATION:
        await a.say(text)
        finished = await a.until("generation.finished", timeout=20)
        assert finished["status"] == "complete", finished

    replies = [m async for m in Message.objects.filter(role="assistant").order_by("id")]
    answered = [r for r in fake.requests if r.scenario_name != "over_window"]
    refused = [r for r in fake.requests if r.scenario_name == "over_window"]
    assert len(answered) == len(replies) == len(CONVERSATION)
    for reply in replies:
        real = reply.input_tokens + reply.cache_read_input_tokens
        assert real + 200 <= 2500, (real, reply.estimated_input_tokens)
        if token_scale == 1.0:
            # The estimate the server stored is at least what the tokenizer counted.
            assert reply.estimated_input_tokens >= real, (reply.estimated_input_tokens, real)
    first_kept = [json.dumps(r.body).count(CONVERSATION[0][:40]) for r in answered]
    assert first_kept[-1] == 0, "the conversation outgrew the window, so old turns were left out"
    if token_scale == 1.0:
        assert refused == []  # the estimate alone kept every request inside
    else:
        # A denser tokenizer than the estimate's: the room's calibration (reported usage over
        # the stored estimate) absorbs it, and a request refused before it had a measurement
        # is rebuilt for the density the refusal reported, once, before any text.
        assert len(refused) <= 2, len(refused)


@in_rooms
@pytest.mark.parametrize("which", ["anthropic", "heroku"])
async def test_a_first_turn_the_model_refuses_as_too_long_is_refitted_once_and_answered(
    which: str,
    request: pytest.FixtureRequest,
    settings: Any,
    connect: Connect,
    room: Room,
    alice: tuple[User, str],
) -> None:
    fake: Any = request.getfixturevalue(f"use_fake_{which}")
    settings.LLM_CONTEXT_WINDOW = 2500
    settings.LLM_MAX_TOKENS = 200
    fake.context_window = 2500
    fake.token_scale = 2.0  # denser than the estimate allows for, and nothing measured yet
    fake.default = Reply(chunks=["Got ", "it."])
    pasted = (texts.DENSE["random characters"] + texts.DENSE["base64 key"])[:2400]
    a = await connect("lounge", alice[1])
    await a.say(pasted)
    finished = await a.until("generation.finished", timeout=20)

    assert (finished["status"], finished["text"]) == ("complete", "Got it.")
    refused, answered = fake.requests
    assert (refused.scenario_name, answered.scenario_name) == ("over_window", "default")
    # The refit kept the newest end of the message, marked as cut, within the window.
    sent = json.dumps(answered.body, ensure_ascii=False)
    assert pasted[-200:] in sent and pasted[:200] not in sent and "…" in sent
    stored = await Message.objects.aget(pk=finished["message_id"])
    assert stored.input_tokens + stored.cache_read_input_tokens + 200 <= 2500
    assert not a.of_type("generation.retrying")  # not an upstream failure: nothing to announce
