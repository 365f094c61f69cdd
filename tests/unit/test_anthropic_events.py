"""Reading Anthropic's event stream from its lines (pure): the bytes the fake API writes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatsite.llm.anthropic_events import (
    MalformedStreamError,
    MessageProgress,
    ServerSentEvent,
    SSEDecoder,
    UpstreamStreamError,
    apply_event,
)
from chatsite.llm.base import StreamEnd, StreamEvent, TextDelta, Usage, UsageUpdate
from tests.fakes.anthropic_api import AnthropicFrames, sse
from tests.fakes.scenarios import Reply


def frames(reply: Reply, input_tokens: int = 12) -> AnthropicFrames:
    return AnthropicFrames(model="m", reply=reply, input_tokens=input_tokens, request_id="req_1")


def body_of(reply: Reply, input_tokens: int = 12) -> bytes:
    """A whole successful stream, as the fake API writes it."""
    stream = frames(reply, input_tokens)
    chunks = reply.chunks or []
    return b"".join([*stream.opening(), *map(stream.delta, chunks), *stream.closing(len(chunks))])


def read(body: bytes, newline: str = "\n") -> list[StreamEvent]:
    """Every reply event of `body`, fed line by line like the provider does."""
    decoder, progress, seen = SSEDecoder(), MessageProgress(), []
    text = body.decode().replace("\n", newline)
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        event = decoder.feed(line)
        if event is not None:
            update = apply_event(progress, event)
            if update is not None:
                seen.append(update)
    return seen


def test_a_whole_stream_gives_its_text_usage_and_stop_reason() -> None:
    reply = Reply(chunks=["Hel", "lo ", "wörld 🌍"], output_tokens=3, cache_read_input_tokens=900)
    seen = read(body_of(reply))
    assert "".join(e.text for e in seen if isinstance(e, TextDelta)) == "Hello wörld 🌍"
    assert isinstance(seen[0], UsageUpdate) and seen[0].usage.input_tokens == 12
    assert seen[-1] == StreamEnd("end_turn", Usage(12, 3, 0, 900))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_ending_the_format_allows_reads_alike(newline: str) -> None:
    reply = Reply(chunks=["a", "b"], stop_reason="max_tokens")
    assert read(body_of(reply), newline) == read(body_of(reply))


def test_data_over_several_lines_is_joined_and_comments_are_skipped() -> None:
    decoder = SSEDecoder()
    lines = [": keep-alive", "event: x", 'data: {"a":', "data:1}", "id: 7", ""]
    assert [decoder.feed(line) for line in lines][-1] == ServerSentEvent("x", '{"a":\n1}')
    assert decoder.feed("") is None  # a lone blank line dispatches nothing


def test_the_usage_of_message_delta_is_cumulative_and_a_null_count_keeps_the_known_one() -> None:
    progress = MessageProgress()
    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 50, "output_tokens": 1}},
    }
    apply_event(progress, ServerSentEvent("message_start", json.dumps(start)))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 40, "input_tokens": None},
    }
    assert apply_event(progress, ServerSentEvent("message_delta", json.dumps(delta))) is None
    end = apply_event(progress, ServerSentEvent("message_stop", '{"type":"message_stop"}'))
    assert end == StreamEnd("end_turn", Usage(input_tokens=50, output_tokens=40))


def test_events_a_reply_does_not_use_are_skipped() -> None:
    progress = MessageProgress()
    others = [
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 1}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "citations_delta"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "input_json_delta"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("some_future_event", {"type": "some_future_event"}),
    ]
    for name, payload in others:
        assert apply_event(progress, ServerSentEvent(name, json.dumps(payload))) is None
    assert progress == MessageProgress()


def test_an_error_event_raises_with_the_api_error_type() -> None:
    event = sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    )
    with pytest.raises(UpstreamStreamError) as caught:
        read(body_of(Reply(chunks=["a"])) + event)
    assert (caught.value.kind, caught.value.message) == ("overloaded_error", "busy")


@pytest.mark.parametrize(
    "event",
    [
        ServerSentEvent("content_block_delta", "{not json"),
        ServerSentEvent("content_block_delta", "[1, 2]"),
        ServerSentEvent(
            "content_block_delta", '{"type":"content_block_delta","delta":{"type":"text_delta"}}'
        ),
        ServerSentEvent("message_stop", '{"type":"message_stop"}'),  # no stop_reason came
    ],
)
def test_malformed_events_are_refused(event: ServerSentEvent) -> None:
    with pytest.raises(MalformedStreamError):
        apply_event(MessageProgress(), event)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30))
def test_any_text_comes_through_exactly(chunks: list[str]) -> None:
    # Newlines, carriage returns and "data:" inside a delta are JSON-escaped on the wire.
    seen = read(body_of(Reply(chunks=chunks)))
    assert [e.text for e in seen if isinstance(e, TextDelta)] == chunks
    assert isinstance(seen[-1], StreamEnd)
