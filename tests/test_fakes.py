"""Tests of the fake model APIs, driven by the real anthropic and openai SDKs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.fakes import (
    Fail,
    FakeAnthropic,
    FakeOpenAI,
    Reply,
    queue_remote,
    remote_requests,
)
from tests.fakes.tokens import MESSAGE_FRAMING, count_request, count_text

pytestmark = pytest.mark.timeout(10)

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "claude-test-model"
# Fails fast instead of hanging when a fake misbehaves; stall tests tighten `read`.
TIMEOUT = httpx2.Timeout(5, read=2)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def claude(
    fake: FakeAnthropic, api_key: str = "test-key", timeout: httpx2.Timeout = TIMEOUT
) -> anthropic.AsyncAnthropic:
    """A real Anthropic client pointed at the fake, without retries."""
    return anthropic.AsyncAnthropic(
        api_key=api_key, base_url=fake.base_url, max_retries=0, timeout=timeout
    )


def heroku(
    fake: FakeOpenAI, api_key: str = "test-key", timeout: httpx2.Timeout = TIMEOUT
) -> openai.AsyncOpenAI:
    """A real OpenAI client pointed at the fake, as used for Heroku Managed Inference."""
    return openai.AsyncOpenAI(
        api_key=api_key, base_url=f"{fake.base_url}/v1", max_retries=0, timeout=timeout
    )


async def stream_claude(
    client: anthropic.AsyncAnthropic, content: Any = "hi", texts: list[str] | None = None
) -> anthropic.types.Message:
    """Streams one message, collecting text deltas into `texts`; returns the final message."""
    texts = [] if texts is None else texts
    messages: Any = [{"role": "user", "content": content}]
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:
        async for text in stream.text_stream:
            texts.append(text)
        return await stream.get_final_message()


def text_of(message: anthropic.types.Message) -> str:
    """The text blocks of a message, joined."""
    return "".join(block.text for block in message.content if block.type == "text")


async def stream_heroku(
    client: openai.AsyncOpenAI, content: str = "hi", *, include_usage: bool = True
) -> list[Any]:
    """Streams one chat completion and returns its chunks."""
    stream = await client.chat.completions.create(
        model="claude-4-sonnet",
        messages=[{"role": "user", "content": content}],
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    return [chunk async for chunk in stream]


# --- Anthropic: normal streams -----------------------------------------------------------


@pytest.mark.asyncio
async def test_stream_accumulates_text_usage_and_stop_reason(fake: FakeAnthropic) -> None:
    fake.queue(
        Reply(
            chunks=["Hel", "lo", " there"],
            stop_reason="max_tokens",
            input_tokens=42,
            output_tokens=7,
            cache_creation_input_tokens=3,
            cache_read_input_tokens=5,
        )
    )
    texts: list[str] = []
    async with claude(fake) as client:
        message = await stream_claude(client, texts=texts)

    assert texts == ["Hel", "lo", " there"]
    assert text_of(message) == "Hello there"
    assert message.stop_reason == "max_tokens"
    assert message.model == MODEL
    assert message.id.startswith("msg_")
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (42, 7)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (3, 5)


@pytest.mark.asyncio
async def test_default_reply_quotes_the_user_and_counts_usage(fake: FakeAnthropic) -> None:
    async with claude(fake) as client:
        message = await stream_claude(client, "alice: how are you?")

    body = fake.requests[0].body
    assert text_of(message) == "You said: alice: how are you?. Here is a reply."
    # Claude's published tokenizer: "alice: how are you?" is 6 tokens, plus 4 of framing.
    assert message.usage.input_tokens == count_request(body) == 10
    assert message.usage.output_tokens == 8
    assert message.stop_reason == "end_turn"


@pytest.mark.asyncio
async def test_request_body_headers_and_scenario_are_recorded(fake: FakeAnthropic) -> None:
    async with claude(fake, api_key="sk-recorded") as client:
        await stream_claude(client, "record me")

    (request,) = fake.wait_for_requests(1)
    assert (request.method, request.path, request.scenario_name) == (
        "POST",
        "/v1/messages",
        "default",
    )
    assert request.headers["authorization"] == "Bearer sk-recorded"
    assert request.headers["anthropic-version"]
    assert request.body is not None
    assert request.body["model"] == MODEL
    assert request.body["stream"] is True
    assert request.body["messages"] == [{"role": "user", "content": "record me"}]


@pytest.mark.asyncio
async def test_queue_is_fifo_then_falls_back_to_the_default(fake: FakeAnthropic) -> None:
    fake.queue(Reply(chunks=["first"]), Reply(chunks=["second"]))
    fake.default = Reply(chunks=["fallback"])
    async with claude(fake) as client:
        texts = [text_of(await stream_claude(client)) for _ in range(3)]

    assert texts == ["first", "second", "fallback"]
    assert [r.scenario_name for r in fake.requests] == ["queue", "queue", "default"]


@pytest.mark.asyncio
async def test_named_marker_wins_over_the_queue(fake: FakeAnthropic) -> None:
    fake.named["quick"] = Reply(chunks=["named"])
    fake.queue(Reply(chunks=["queued"]))
    blocks = [{"type": "text", "text": "alice: [[fake:quick]] hello"}]
    async with claude(fake) as client:
        named = await stream_claude(client, blocks)
        queued = await stream_claude(client, "no marker")

    assert (text_of(named), text_of(queued)) == ("named", "queued")
    assert [r.scenario_name for r in fake.requests] == ["quick", "queue"]


@pytest.mark.asyncio
async def test_delays_pace_the_stream(fake: FakeAnthropic) -> None:
    fake.queue(Reply(chunks=["a", "b", "c"], delay=0.1, first_delay=0.2))
    started = time.monotonic()
    async with claude(fake) as client:
        await stream_claude(client)

    assert time.monotonic() - started >= 0.4


@pytest.mark.asyncio
async def test_non_streaming_create_returns_the_whole_message(fake: FakeAnthropic) -> None:
    fake.queue(Reply(chunks=["one ", "piece"], output_tokens=2))
    async with claude(fake) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )

    assert text_of(message) == "one piece"
    assert (message.stop_reason, message.usage.output_tokens) == ("end_turn", 2)


@pytest.mark.asyncio
async def test_count_tokens_answers_the_tokenizers_count(fake: FakeAnthropic) -> None:
    async with claude(fake) as client:
        count = await client.messages.count_tokens(
            model=MODEL, system="be brief", messages=[{"role": "user", "content": "x" * 40}]
        )

    assert count.input_tokens == count_text("be brief") + 2 + count_text("x" * 40) + 4
    assert fake.requests[0].scenario_name is None


# --- Anthropic: failures -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_rate_limit_carries_retry_after(fake: FakeAnthropic) -> None:
    fake.queue(Fail(429, retry_after=3, message="slow down"))
    async with claude(fake) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await stream_claude(client)

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.type == "rate_limit_error"
    assert caught.value.api_message == "slow down"
    assert caught.value.request_id is not None


@pytest.mark.asyncio
async def test_overloaded_529(fake: FakeAnthropic) -> None:
    fake.queue(Fail(529))
    async with claude(fake) as client:
        with pytest.raises(anthropic.OverloadedError) as caught:
            await stream_claude(client)

    assert isinstance(caught.value, anthropic.InternalServerError)
    assert (caught.value.status_code, caught.value.type) == (529, "overloaded_error")


@pytest.mark.asyncio
async def test_standard_named_scenarios_are_preinstalled(fake: FakeAnthropic) -> None:
    async with claude(fake) as client:
        with pytest.raises(anthropic.RateLimitError):
            await stream_claude(client, "[[fake:rate_limit]] hi")


@pytest.mark.asyncio
async def test_wrong_key_gets_401() -> None:
    with FakeAnthropic(api_key="right-key") as fake:
        async with claude(fake, api_key="wrong-key") as client:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                await stream_claude(client)
        assert caught.value.type == "authentication_error"
        assert fake.requests[0].scenario_name is None


def test_missing_bearer_and_unknown_paths_are_rejected(fake: FakeAnthropic) -> None:
    unauthenticated = httpx2.post(f"{fake.base_url}/v1/messages", json={"messages": []})
    unknown = httpx2.get(f"{fake.base_url}/v1/models", headers={"authorization": "Bearer k"})

    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["type"] == "authentication_error"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"
    assert len(fake.requests) == 2


@pytest.mark.asyncio
async def test_error_event_mid_stream(fake: FakeAnthropic) -> None:
    fake.queue(Reply(chunks=["partial ", "text", "never"], then="error", after=2))
    texts: list[str] = []
    async with claude(fake) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await stream_claude(client, texts=texts)

    assert texts == ["partial ", "text"]
    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"


@pytest.mark.asyncio
async def test_cut_raises_remote_protocol_error(fake: FakeAnthropic) -> None:
    fake.queue(Reply(chunks=["a", "b", "c"], then="cut", after=1))
    texts: list[str] = []
    async with claude(fake) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await stream_claude(client, texts=texts)

    assert texts == ["a"]


@pytest.mark.asyncio
async def test_stall_hits_the_read_timeout(fake: FakeAnthropic) -> None:
    fake.queue(Reply(chunks=["a", "b"], then="stall", after=1))
    texts: list[str] = []
    async with claude(fake, timeout=httpx2.Timeout(5, read=0.5)) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await stream_claude(client, texts=texts)

    assert texts == ["a"]


@pytest.mark.asyncio
async def test_stop_releases_a_stalled_stream() -> None:
    fake = FakeAnthropic().start()
    fake.queue(Reply(then="stall", after=1))
    threading.Timer(0.3, fake.stop).start()
    started = time.monotonic()
    async with claude(fake) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await stream_claude(client)

    assert time.monotonic() - started < 1.5


@pytest.mark.asyncio
async def test_truncate_ends_cleanly_without_stop_reason(fake: FakeAnthropic) -> None:
    fake.queue(Reply(chunks=["a", "b", "c"], then="truncate", after=2))
    texts: list[str] = []
    async with claude(fake) as client:
        message = await stream_claude(client, texts=texts)

    assert texts == ["a", "b"]
    assert message.stop_reason is None


# --- Fake API: waiting, resetting, remote control ----------------------------------------


def test_wait_for_requests_times_out(fake: FakeAnthropic) -> None:
    with pytest.raises(TimeoutError):
        fake.wait_for_requests(1, timeout=0.1)


@pytest.mark.asyncio
async def test_reset_forgets_queue_requests_default_and_names(fake: FakeAnthropic) -> None:
    fake.queue(Fail(500))
    fake.default = Fail(503)
    fake.named["gone"] = Fail(400)
    async with claude(fake) as client:
        await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "x"}])
        fake.reset()
        message = await stream_claude(client, "[[fake:gone]]")

    assert message.stop_reason == "end_turn"
    assert [r.scenario_name for r in fake.requests] == ["default"]
    assert "gone" not in fake.named and "slow" in fake.named


@pytest.mark.asyncio
async def test_control_endpoints_queue_and_list(fake: FakeAnthropic) -> None:
    queue_remote(fake.base_url, Reply(chunks=["remote"]), Fail(409))
    async with claude(fake) as client:
        message = await stream_claude(client)
        with pytest.raises(anthropic.ConflictError):
            await stream_claude(client)

    assert text_of(message) == "remote"
    recorded = remote_requests(fake.base_url)
    assert [r["scenario_name"] for r in recorded] == ["queue", "queue"]
    assert recorded[0]["body"]["model"] == MODEL
    bad = httpx2.post(f"{fake.base_url}/_fake/queue", json={"kind": "nope"})
    assert bad.status_code == 400


@pytest.mark.asyncio
async def test_standalone_server_runs_until_terminated() -> None:
    command = [sys.executable, "-m", "tests.fakes.anthropic_api", "--port", "0", "--words", "3"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split()[-1]
        client = anthropic.AsyncAnthropic(
            api_key="k", base_url=base_url, max_retries=0, timeout=TIMEOUT
        )
        async with client:
            texts: list[str] = []
            await stream_claude(client, texts=texts)
        assert texts == ["lorem ", "ipsum ", "dolor."]
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


# --- OpenAI-style (Heroku Managed Inference) ---------------------------------------------


@pytest.mark.asyncio
async def test_openai_stream_text_finish_reason_and_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(chunks=["Hi", " there"], cache_read_input_tokens=4))
    async with heroku(fake_openai) as client:
        chunks = await stream_heroku(client, "hello")

    *content_chunks, usage_chunk = chunks
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == "Hi there"
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    prompt_tokens = count_request(fake_openai.requests[0].body)
    assert prompt_tokens == count_text("hello") + MESSAGE_FRAMING
    assert usage_chunk.usage.prompt_tokens == prompt_tokens
    assert usage_chunk.usage.completion_tokens == 2
    assert usage_chunk.usage.total_tokens == prompt_tokens + 2
    assert usage_chunk.usage.prompt_tokens_details.cached_tokens == 4


@pytest.mark.asyncio
async def test_openai_max_tokens_is_length_and_usage_is_opt_in(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(chunks=["cut short"], stop_reason="max_tokens"))
    async with heroku(fake_openai) as client:
        chunks = await stream_heroku(client, include_usage=False)

    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices and c.usage is None for c in chunks)


@pytest.mark.asyncio
async def test_openai_records_request_and_honours_markers(fake_openai: FakeOpenAI) -> None:
    fake_openai.named["short"] = Reply(chunks=["marked"])
    async with heroku(fake_openai, api_key="inference-key") as client:
        chunks = await stream_heroku(client, "[[fake:short]] please")

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "marked"
    (request,) = fake_openai.requests
    assert (request.path, request.scenario_name) == ("/v1/chat/completions", "short")
    assert request.headers["authorization"] == "Bearer inference-key"
    assert request.body is not None
    assert request.body["stream_options"] == {"include_usage": True}


@pytest.mark.asyncio
async def test_openai_non_streaming_completion(fake_openai: FakeOpenAI) -> None:
    async with heroku(fake_openai) as client:
        completion = await client.chat.completions.create(
            model="claude-4-sonnet", messages=[{"role": "user", "content": "yo"}]
        )

    assert completion.choices[0].message.content == "You said: yo. Here is a reply."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 8


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fail", "error_class"),
    [
        (Fail(429, retry_after=2), openai.RateLimitError),
        (Fail(503), openai.InternalServerError),
        (Fail(401), openai.AuthenticationError),
    ],
)
async def test_openai_error_statuses(
    fake_openai: FakeOpenAI, fail: Fail, error_class: type[openai.APIStatusError]
) -> None:
    fake_openai.queue(fail)
    async with heroku(fake_openai) as client:
        with pytest.raises(error_class) as caught:
            await stream_heroku(client)

    assert caught.value.status_code == fail.status
    assert caught.value.response.headers.get("retry-after") == (
        None if fail.retry_after is None else f"{fail.retry_after:g}"
    )


@pytest.mark.asyncio
async def test_openai_wrong_key_gets_401() -> None:
    with FakeOpenAI(api_key="right-key") as fake_openai:
        async with heroku(fake_openai, api_key="wrong-key") as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                await stream_heroku(client)

    assert caught.value.code == "invalid_api_key"


@pytest.mark.asyncio
async def test_openai_error_event_mid_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(then="error", after=1, error_type="server_error"))
    async with heroku(fake_openai) as client:
        with pytest.raises(openai.APIError) as caught:
            await stream_heroku(client)

    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.type == "server_error"


@pytest.mark.asyncio
async def test_openai_cut_is_a_connection_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(then="cut", after=1))
    async with heroku(fake_openai) as client:
        with pytest.raises(openai.APIConnectionError) as caught:
            await stream_heroku(client)

    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)


@pytest.mark.asyncio
async def test_openai_stall_is_a_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(then="stall", after=1))
    async with heroku(fake_openai, timeout=httpx2.Timeout(5, read=0.5)) as client:
        with pytest.raises(openai.APITimeoutError) as caught:
            await stream_heroku(client)

    assert isinstance(caught.value.__cause__, httpx2.ReadTimeout)


@pytest.mark.asyncio
async def test_openai_truncate_ends_without_finish_reason(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue(Reply(chunks=["a", "b"], then="truncate"))
    async with heroku(fake_openai) as client:
        chunks = await stream_heroku(client)

    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None]


# --- token counts and the context window ---------------------------------------------------------


@pytest.mark.asyncio
async def test_input_tokens_come_from_the_tokenizer_scaled_like_a_newer_model(
    fake: FakeAnthropic,
) -> None:
    text = "```python\ndef f(x):\n    return {k: v for k, v in x.items()}\n```"
    async with claude(fake) as client:
        plain = await stream_claude(client, text)
        fake.token_scale = 1.5
        scaled = await stream_claude(client, text)
    assert plain.usage.input_tokens == count_text(text) + MESSAGE_FRAMING
    assert scaled.usage.input_tokens == round(plain.usage.input_tokens * 1.5)


@pytest.mark.asyncio
async def test_a_request_over_the_window_is_refused_like_the_real_apis_do(
    fake: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    long = "tide pools " * 200
    fake.context_window = fake_openai.context_window = 100
    async with claude(fake) as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await stream_claude(client, long)
    tokens = count_text(long) + MESSAGE_FRAMING
    assert f"exceed context limit: {tokens} + 64 > 100" in str(refused.value)
    async with heroku(fake_openai) as client:
        with pytest.raises(openai.BadRequestError) as refused_openai:
            await stream_heroku(client, long)
    assert refused_openai.value.code == "context_length_exceeded"
    assert "maximum context length is 100 tokens" in str(refused_openai.value)
    fake.context_window = fake_openai.context_window = None
    async with claude(fake) as client:
        assert (await stream_claude(client, "short")).stop_reason == "end_turn"
