"""Anthropic's Messages stream read from its server-sent events: pure functions, no I/O.

The SDK's `messages.stream()` builds a pydantic object and a running snapshot of the whole
message for every event. At 25 replies of 60 tokens a second in one process that was a third
of a core (docs/benchmarks.md, "50 rooms"). Here an event costs one `json.loads`, and only
what a reply needs is kept: its text deltas, its usage and how it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .base import StreamEnd, StreamEvent, TextDelta, Usage, UsageUpdate

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event of a `text/event-stream` body."""

    event: str
    data: str


class SSEDecoder:
    """Lines of an event-stream body in, whole events out (the WHATWG rules a client needs)."""

    def __init__(self) -> None:
        self._event = ""  # the `event:` field of the event being read
        self._data: list[str] = []  # its `data:` lines, joined with newlines on dispatch

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line break); return the event a blank line completes."""
        if not line:
            if not self._data:
                self._event = ""
                return None  # an event without data is not dispatched
            event = ServerSentEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # `id` and `retry` mean nothing to a one-shot request


class UpstreamStreamError(Exception):
    """The stream's `error` event: the API failed after answering 200."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind  # the API's `error.type`: overloaded_error, api_error...
        self.message = message


class MalformedStreamError(Exception):
    """An event whose data is not the JSON object the API documents."""


@dataclass
class MessageProgress:
    """What one streamed message has said so far (see `apply_event`)."""

    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None
    # True once `message_stop` arrived: the only proof the stream was not cut short.
    stopped: bool = False


def decode_payload(event: ServerSentEvent) -> dict[str, Any]:
    """The event's JSON object; raises MalformedStreamError for anything else."""
    try:
        payload = json.loads(event.data)
    except ValueError as exc:
        raise MalformedStreamError(
            f"{event.event} event is not JSON: {event.data[:200]!r}"
        ) from exc
    if not isinstance(payload, dict):
        raise MalformedStreamError(f"{event.event} event is not an object: {event.data[:200]!r}")
    return payload


def _merged_usage(usage: Usage, reported: Any) -> Usage:
    """`usage` with every count the API reported (a count it leaves out or sends null stays)."""
    if not isinstance(reported, dict):
        return usage
    counts = usage.as_dict()
    for name in USAGE_FIELDS:
        value = reported.get(name)
        if isinstance(value, int):
            counts[name] = value
    return Usage(**counts)


def apply_event(progress: MessageProgress, event: ServerSentEvent) -> StreamEvent | None:
    """Fold one event into `progress`; return what the reply runner must hear of it, if anything.

    Text deltas become `TextDelta`, `message_start` a `UsageUpdate` (the input is charged even
    if the stream then fails), `message_stop` the `StreamEnd`. Events a reply does not use
    (pings, block starts and stops, other kinds of delta, event types added later) are skipped.
    Raises UpstreamStreamError for an `error` event and MalformedStreamError for bad data.
    """
    if event.event == "ping":
        return None
    payload = decode_payload(event)
    kind = payload.get("type", event.event)
    if kind == "content_block_delta":
        delta = payload.get("delta")
        if isinstance(delta, dict) and delta.get("type") == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str):
                raise MalformedStreamError("text_delta without text")
            return TextDelta(text)
        return None
    if kind == "message_start":
        message = payload.get("message")
        reported = message.get("usage") if isinstance(message, dict) else None
        progress.usage = _merged_usage(progress.usage, reported)
        return UsageUpdate(progress.usage)
    if kind == "message_delta":
        delta = payload.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason") is not None:
            progress.stop_reason = str(delta["stop_reason"])
        # The usage of message_delta is cumulative: it replaces what message_start said.
        progress.usage = _merged_usage(progress.usage, payload.get("usage"))
        return None
    if kind == "message_stop":
        if progress.stop_reason is None:
            raise MalformedStreamError("message_stop before any stop_reason")
        progress.stopped = True
        return StreamEnd(progress.stop_reason, progress.usage)
    if kind == "error":
        error = payload.get("error")
        error = error if isinstance(error, dict) else {}
        raise UpstreamStreamError(str(error.get("type", "")), str(error.get("message", "")))
    return None
