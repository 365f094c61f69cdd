"""Fake OpenAI-style chat completions API, as Heroku Managed Inference serves it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence

from .scenarios import (
    Exchange,
    Fail,
    FakeServer,
    JSONDict,
    Reply,
    run_cli,
)

DEFAULT_MODEL = "fake-model"

# Anthropic stop reasons (as scenarios spell them) to OpenAI finish reasons.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# The `error.type` and `error.code` OpenAI-style APIs send with each status.
ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


def finish_reason_for(stop_reason: str) -> str:
    """The OpenAI `finish_reason` for a scenario's stop reason (unknown ones pass through)."""
    return FINISH_REASONS.get(stop_reason, stop_reason)


def error_object(fail: Fail) -> JSONDict:
    """The `error` object of an OpenAI-style error response."""
    default_type, default_code = ERROR_TYPES.get(
        fail.status,
        ("invalid_request_error" if fail.status < 500 else "server_error", None),
    )
    return {
        "message": fail.message,
        "type": fail.error_type or default_type,
        "param": None,
        "code": fail.code if fail.code is not None else default_code,
    }


def data_line(payload: JSONDict) -> bytes:
    """One data-only SSE frame."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class OpenAIFrames:
    """The SSE frames of one streamed chat completion."""

    content_type = "text/event-stream; charset=utf-8"

    def __init__(
        self, *, model: str, reply: Reply, prompt_tokens: int, include_usage: bool
    ) -> None:
        self._model = model
        self._reply = reply
        self._prompt_tokens = prompt_tokens
        self._include_usage = include_usage
        self.completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self._created = int(time.time())

    def opening(self) -> list[bytes]:
        """The first chunk: the assistant role with empty content."""
        return [self._chunk({"role": "assistant", "content": ""})]

    def delta(self, text: str) -> bytes:
        """A chunk carrying one piece of content."""
        return self._chunk({"content": text})

    def closing(self, sent: int) -> list[bytes]:
        """The finish_reason chunk, the usage chunk when asked for, and `[DONE]`."""
        finish = self._chunk({}, finish_reason=finish_reason_for(self._reply.stop_reason))
        usage = [self._usage_chunk(sent)] if self._include_usage else []
        return [finish, *usage, b"data: [DONE]\n\n"]

    def error(self) -> bytes:
        """A data event carrying an `error` object, as sent when generation fails mid-stream."""
        message = f"Fake {self._reply.error_type} in the middle of the stream"
        error = {
            "message": message,
            "type": self._reply.error_type,
            "param": None,
            "code": None,
        }
        return data_line({"error": error})

    def _chunk(self, delta: JSONDict, finish_reason: str | None = None) -> bytes:
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        return data_line(self._envelope([choice]))

    def _usage_chunk(self, sent: int) -> bytes:
        envelope = self._envelope([])
        envelope["usage"] = usage_object(self._reply, self._prompt_tokens, sent)
        return data_line(envelope)

    def _envelope(self, choices: list[JSONDict]) -> JSONDict:
        envelope: JSONDict = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": choices,
        }
        # With include_usage, every chunk but the last carries `"usage": null`.
        if self._include_usage:
            envelope["usage"] = None
        return envelope


def usage_object(reply: Reply, prompt_tokens: int, sent: int) -> JSONDict:
    """The `usage` object: prompt, completion and total tokens, plus cached prompt tokens."""
    completion_tokens = reply.output_tokens if reply.output_tokens is not None else sent
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cache_read_input_tokens},
    }


class FakeOpenAI(FakeServer):
    """A fake OpenAI-style chat completions API on loopback for the real `openai` SDK."""

    request_id_header = "x-request-id"

    def handle_api(self, exchange: Exchange) -> None:
        """Routes `POST /v1/chat/completions`; 404 for the rest."""
        if (exchange.method, exchange.path) == ("POST", "/v1/chat/completions"):
            self._completions(exchange)
        else:
            self.record(exchange, None)
            message = f"No fake route for {exchange.method} {exchange.path}"
            self.send_fail(exchange, Fail(404, message=message))

    def window_refusal(self, tokens: int, max_tokens: int, window: int) -> Fail:
        message = (
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{tokens + max_tokens} tokens ({tokens} in the messages, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion."
        )
        return Fail(400, message=message, code="context_length_exceeded")

    def send_fail(self, exchange: Exchange, fail: Fail) -> None:
        """Answers with an OpenAI-style error response, with `retry-after` when set."""
        headers = {} if fail.retry_after is None else {"retry-after": f"{fail.retry_after:g}"}
        exchange.send_json(fail.status, {"error": error_object(fail)}, headers)

    def _completions(self, exchange: Exchange) -> None:
        body = exchange.body
        if body is None or not isinstance(body.get("messages"), list):
            self.record(exchange, None)
            self.send_fail(exchange, Fail(400, message="Body must be JSON with a messages list"))
            return
        if self.refused_over_window(exchange):
            return
        scenario = self.choose(exchange)
        if isinstance(scenario, Fail):
            self.send_fail(exchange, scenario)
        elif body.get("stream"):
            self.play_stream(exchange, scenario, self._frames(body, scenario))
        else:
            self._send_completion(exchange, scenario)

    def _frames(self, body: JSONDict, reply: Reply) -> OpenAIFrames:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return OpenAIFrames(
            model=_model(body),
            reply=reply,
            prompt_tokens=self._prompt_tokens(body, reply),
            include_usage=include_usage,
        )

    def _prompt_tokens(self, body: JSONDict | None, reply: Reply) -> int:
        """The scenario's prompt token count, else the request's, counted by the tokenizer."""
        return (
            reply.input_tokens if reply.input_tokens is not None else self.count_input_tokens(body)
        )

    def _send_completion(self, exchange: Exchange, reply: Reply) -> None:
        chunks = self.prepare_whole(exchange, reply)
        if chunks is None:
            return
        finish_reason = None if reply.then == "truncate" else finish_reason_for(reply.stop_reason)
        message = {"role": "assistant", "content": "".join(chunks), "refusal": None}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": _model(exchange.body),
            "system_fingerprint": None,
            "choices": [choice],
            "usage": usage_object(reply, self._prompt_tokens(exchange.body, reply), len(chunks)),
        }
        exchange.send_json(200, completion)


def _model(body: JSONDict | None) -> str:
    """The model the request asked for, echoed back."""
    model = body.get("model") if body else None
    return model if isinstance(model, str) else DEFAULT_MODEL


def main(argv: Sequence[str] | None = None) -> int:
    """Serves the fake OpenAI-style API until killed."""
    return run_cli(FakeOpenAI, prog="fake-openai", default_port=8766, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
