"""Fake Anthropic Messages API: `POST /v1/messages` streaming SSE byte for byte like the real one."""

from __future__ import annotations

import json
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

DEFAULT_MODEL = "claude-fake"

# The `error.type` the real API sends with each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    """The Anthropic `error.type` for an HTTP status."""
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(error_type: str, message: str, request_id: str) -> JSONDict:
    """An Anthropic error object, as sent in error responses and `error` events."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def sse(event: str, data: JSONDict) -> bytes:
    """One SSE frame: an `event:` line, a `data:` line, and a blank line."""
    payload = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


class AnthropicFrames:
    """The SSE frames of one streamed Anthropic message."""

    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, *, model: str, reply: Reply, input_tokens: int, request_id: str) -> None:
        self._model = model
        self._reply = reply
        self._input_tokens = input_tokens
        self._request_id = request_id
        self.message_id = f"msg_{uuid.uuid4().hex[:24]}"

    def opening(self) -> list[bytes]:
        """`message_start`, `content_block_start` for text block 0, then a `ping`."""
        message: JSONDict = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**self._input_usage(), "output_tokens": 1},
        }
        block = {"type": "text", "text": ""}
        return [
            sse("message_start", {"type": "message_start", "message": message}),
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
            sse("ping", {"type": "ping"}),
        ]

    def delta(self, text: str) -> bytes:
        """A `content_block_delta` carrying a text delta for block 0."""
        delta = {"type": "text_delta", "text": text}
        return sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": delta},
        )

    def closing(self, sent: int) -> list[bytes]:
        """`content_block_stop`, `message_delta` with the stop reason and usage, `message_stop`."""
        output_tokens = self._reply.output_tokens if self._reply.output_tokens is not None else sent
        delta = {"stop_reason": self._reply.stop_reason, "stop_sequence": None}
        # Usage on message_delta is cumulative, so the input counts are repeated.
        usage = {**self._input_usage(), "output_tokens": output_tokens}
        return [
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": usage},
            ),
            sse("message_stop", {"type": "message_stop"}),
        ]

    def error(self) -> bytes:
        """An `error` event, as the API sends when it fails mid-stream."""
        message = f"Fake {self._reply.error_type} in the middle of the stream"
        return sse("error", error_body(self._reply.error_type, message, self._request_id))

    def _input_usage(self) -> JSONDict:
        return {
            "input_tokens": self._input_tokens,
            "cache_creation_input_tokens": self._reply.cache_creation_input_tokens,
            "cache_read_input_tokens": self._reply.cache_read_input_tokens,
        }


class FakeAnthropic(FakeServer):
    """A fake Anthropic API on loopback for the real `anthropic` SDK."""

    request_id_header = "request-id"

    def handle_api(self, exchange: Exchange) -> None:
        """Routes `POST /v1/messages` and `POST /v1/messages/count_tokens`; 404 for the rest."""
        route = (exchange.method, exchange.path)
        if route == ("POST", "/v1/messages"):
            self._messages(exchange)
        elif route == ("POST", "/v1/messages/count_tokens"):
            self.record(exchange, None)
            exchange.send_json(200, {"input_tokens": self.count_input_tokens(exchange.body)})
        else:
            self.record(exchange, None)
            message = f"No fake route for {exchange.method} {exchange.path}"
            self.send_fail(exchange, Fail(404, message=message))

    def window_refusal(self, tokens: int, max_tokens: int, window: int) -> Fail:
        message = (
            f"input length and `max_tokens` exceed context limit: {tokens} + {max_tokens} "
            f"> {window}, decrease input length or `max_tokens` and try again"
        )
        return Fail(400, message=message)

    def send_fail(self, exchange: Exchange, fail: Fail) -> None:
        """Answers with an Anthropic error response, with `retry-after` when set."""
        error_type = fail.error_type or error_type_for(fail.status)
        headers = {} if fail.retry_after is None else {"retry-after": f"{fail.retry_after:g}"}
        body = error_body(error_type, fail.message, exchange.request_id)
        exchange.send_json(fail.status, body, headers)

    def _messages(self, exchange: Exchange) -> None:
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
            self.play_stream(exchange, scenario, self._frames(exchange, scenario))
        else:
            self._send_message(exchange, scenario)

    def _frames(self, exchange: Exchange, reply: Reply) -> AnthropicFrames:
        return AnthropicFrames(
            model=_model(exchange.body),
            reply=reply,
            input_tokens=self._input_tokens(exchange.body, reply),
            request_id=exchange.request_id,
        )

    def _input_tokens(self, body: JSONDict | None, reply: Reply) -> int:
        """The scenario's input token count, else the request's, counted by the tokenizer."""
        return (
            reply.input_tokens if reply.input_tokens is not None else self.count_input_tokens(body)
        )

    def _send_message(self, exchange: Exchange, reply: Reply) -> None:
        chunks = self.prepare_whole(exchange, reply)
        if chunks is None:
            return
        stop_reason = None if reply.then == "truncate" else reply.stop_reason
        usage = {
            "input_tokens": self._input_tokens(exchange.body, reply),
            "cache_creation_input_tokens": reply.cache_creation_input_tokens,
            "cache_read_input_tokens": reply.cache_read_input_tokens,
            "output_tokens": reply.output_tokens
            if reply.output_tokens is not None
            else len(chunks),
        }
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": _model(exchange.body),
            "content": [{"type": "text", "text": "".join(chunks)}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        exchange.send_json(200, message)


def _model(body: JSONDict | None) -> str:
    """The model the request asked for, echoed back like the real API does."""
    model = body.get("model") if body else None
    return model if isinstance(model, str) else DEFAULT_MODEL


def main(argv: Sequence[str] | None = None) -> int:
    """Serves the fake Anthropic API until killed."""
    return run_cli(FakeAnthropic, prog="fake-anthropic", default_port=8765, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
