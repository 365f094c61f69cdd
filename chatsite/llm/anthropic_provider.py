"""Claude through the official `anthropic` SDK, streaming, with prompt caching."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from .anthropic_events import (
    MalformedStreamError,
    MessageProgress,
    SSEDecoder,
    UpstreamStreamError,
    apply_event,
)
from .base import ChatRequest, StreamEvent
from .catalog import deprecation_date, is_deprecated, offered_models
from .errors import (
    LLMError,
    RetryableError,
    StreamBrokenError,
    from_http_status,
    from_transport,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

__all__ = ["AnthropicProvider", "build_params", "deprecation_date", "is_deprecated"]

EPHEMERAL = {"type": "ephemeral"}
# The Messages API refuses a request with more cache breakpoints than this.
MAX_CACHE_BREAKPOINTS = 4


def build_params(request: ChatRequest) -> dict[str, Any]:
    """The Messages API body: system blocks and the stable history carry cache breakpoints.

    At most three breakpoints: the system prompt (changes when the owner edits it), the
    summary (changes at each fold) and the end of the stable history (moves every turn). A
    fold then still reads the system prompt from the cache, and between folds the whole
    prefix up to the previous turn is read at cache prices.
    """
    system: list[dict[str, Any]] = []
    for text in (request.system, request.summary):
        if text:
            system.append({"type": "text", "text": text, "cache_control": EPHEMERAL})
    # Only the newest marked turns fit under the API's limit (the builder marks one).
    marked = [i for i, turn in enumerate(request.turns) if turn.cache_breakpoint]
    room_left = MAX_CACHE_BREAKPOINTS - len(system)
    breakpoints = set(marked[max(0, len(marked) - room_left) :])
    messages: list[dict[str, Any]] = []
    for index, turn in enumerate(request.turns):
        block: dict[str, Any] = {"type": "text", "text": turn.text}
        if index in breakpoints:
            block["cache_control"] = EPHEMERAL
        messages.append({"role": turn.role, "content": [block]})
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    }
    if system:
        params["system"] = system
    return params


def _retry_after(response: httpx2.Response | None) -> float | None:
    return None if response is None else retry_after_seconds(response.headers)


def mid_stream_error(kind: str, summary: str) -> LLMError:
    """The error for an `error` event after a 200: retryable before the first token."""
    if kind == "overloaded_error":
        return RetryableError("overloaded", summary)
    if kind in {"api_error", "rate_limit_error", "timeout_error"}:
        return RetryableError("server_error", summary)
    return StreamBrokenError(summary)


def translate_error(exc: Exception) -> LLMError:
    """Map an SDK or transport exception into the project's error tree."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        kind = exc.type or ""
        summary = f"anthropic {status} {kind}: {exc.api_message or exc.message}"
        if status == 200:
            return mid_stream_error(kind, summary)  # an SSE `error` event mid-stream
        return from_http_status(status, summary, _retry_after(exc.response))
    if isinstance(exc, anthropic.APIConnectionError):
        return RetryableError("connection", f"anthropic connection error: {exc}")
    transport = from_transport(exc)
    if transport is not None:
        return transport
    if isinstance(exc, anthropic.APIResponseValidationError):
        return StreamBrokenError(f"unreadable response: {exc}")
    return StreamBrokenError(f"{type(exc).__name__}: {exc}")


class AnthropicProvider:
    """Streams replies from Claude; the retry loop is the project's, so the SDK never retries."""

    name = "anthropic"

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        default_model: str = "claude-sonnet-5-5",
        allowed_models: list[str] | None = None,
        stall_timeout: float = 30.0,
        summary_model: str = "claude-haiku-5-5",
    ) -> None:
        self.api_key = api_key  # never logged
        self.base_url = base_url or None
        self.default_model = default_model
        # SPEC §4: what owners may pick is the allow-list minus what the SDK calls deprecated.
        self.allowed_models = offered_models(allowed_models or [])
        self._summary_model = summary_model
        self.stall_timeout = stall_timeout
        # An httpx2 connection pool belongs to one event loop: one client per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def client(self) -> anthropic.AsyncAnthropic:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = anthropic.AsyncAnthropic(
                api_key=self.api_key,
                base_url=self.base_url,
                max_retries=0,
                # `read` is the stall timeout: the longest wait for the next byte.
                timeout=httpx2.Timeout(60.0, connect=10.0, read=self.stall_timeout),
            )
            self._clients[loop] = client
        return client

    def model_for(self, room_model: str) -> str:
        if room_model and room_model in self.allowed_models:
            return room_model
        return self.default_model

    def selectable_models(self) -> list[str]:
        return list(self.allowed_models)

    def summary_model(self) -> str:
        return self._summary_model

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        # The raw event stream (`with_streaming_response`), read by `anthropic_events`: the
        # SDK still builds, authenticates and sends the request and turns a refusal into an
        # APIStatusError, but does not parse every event into objects (see that module).
        params = build_params(request)
        progress = MessageProgress()
        decoder = SSEDecoder()
        try:
            async with self.client().messages.with_streaming_response.create(
                **params, stream=True
            ) as response:
                async for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is None:
                        continue
                    update = apply_event(progress, event)
                    if update is not None:
                        yield update
                    if progress.stopped:
                        return  # closing the response frees the connection for the next reply
        except LLMError:
            raise
        except UpstreamStreamError as exc:
            raise mid_stream_error(exc.kind, f"anthropic stream error {exc}") from exc
        except MalformedStreamError as exc:
            raise StreamBrokenError(f"unreadable response: {exc}") from exc
        except Exception as exc:  # SDK and transport errors: translate, never leak SDK types
            raise translate_error(exc) from exc
        raise StreamBrokenError("the stream ended without message_stop")
