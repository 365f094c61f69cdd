"""Heroku Managed Inference: OpenAI-style chat completions through the `openai` SDK."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from .base import ChatRequest, StreamEnd, StreamEvent, TextDelta, Usage
from .errors import (
    LLMError,
    RetryableError,
    StreamBrokenError,
    from_http_status,
    from_transport,
    retry_after_seconds,
)

# OpenAI finish reasons in Anthropic's words (SPEC: stop -> end_turn, length -> max_tokens).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def build_messages(request: ChatRequest) -> list[ChatCompletionMessageParam]:
    """Chat messages with plain-string content (Heroku rejects content lists).

    The system prompt and the summary become one system message: OpenAI-style APIs expect a
    single leading one, and there are no cache breakpoints to place here.
    """
    messages: list[ChatCompletionMessageParam] = []
    system = "\n\n".join(part for part in (request.system, request.summary) if part)
    if system:
        messages.append({"role": "system", "content": system})
    for turn in request.turns:
        if turn.role == "user":
            messages.append({"role": "user", "content": turn.text})
        else:
            messages.append({"role": "assistant", "content": turn.text})
    return messages


def _retry_after(exc: openai.APIStatusError) -> float | None:
    return None if exc.response is None else retry_after_seconds(exc.response.headers)


def translate_error(exc: Exception) -> LLMError:
    """Map an openai SDK or transport exception into the project's error tree."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        summary = f"heroku inference {status}: {exc.message}"
        return from_http_status(status, summary, _retry_after(exc))
    if isinstance(exc, openai.APIConnectionError):
        # Includes APITimeoutError: the SDK wraps read timeouts (stalls) and cut bodies in it.
        return RetryableError("connection", f"heroku inference connection error: {exc}")
    if isinstance(exc, openai.APIError):
        # An `error` object inside the stream (HTTP 200).
        detail = f"heroku inference stream error {exc.type or ''}: {exc.message}"
        if exc.type == "overloaded_error":
            return RetryableError("overloaded", detail)
        return RetryableError("server_error", detail)
    transport = from_transport(exc)
    if transport is not None:
        return transport
    return StreamBrokenError(f"{type(exc).__name__}: {exc}")


def usage_from(usage: Any) -> Usage:
    """OpenAI usage in Anthropic's terms: cached prompt tokens are cache reads, not input."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    prompt = usage.prompt_tokens or 0
    return Usage(
        input_tokens=max(0, prompt - cached),
        output_tokens=usage.completion_tokens or 0,
        cache_read_input_tokens=cached,
    )


class HerokuProvider:
    """Streams replies from the model attached to the app as INFERENCE."""

    name = "heroku"

    def __init__(self, url: str, key: str, model_id: str, stall_timeout: float = 30.0) -> None:
        self.base_url = url.rstrip("/") + "/v1"
        self.key = key  # never logged
        self.model_id = model_id
        self.stall_timeout = stall_timeout
        # An httpx2 connection pool belongs to one event loop: one client per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=self.key,
                base_url=self.base_url,
                max_retries=0,  # the reply runner retries, and announces it to the room
                timeout=httpx2.Timeout(60.0, connect=10.0, read=self.stall_timeout),
            )
            self._clients[loop] = client
        return client

    def model_for(self, room_model: str) -> str:
        return self.model_id

    def selectable_models(self) -> list[str]:
        return []

    def summary_model(self) -> str:
        return self.model_id  # the app has one model attached

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        finish: str | None = None
        usage = Usage()
        try:
            stream = await self.client().chat.completions.create(
                model=self.model_id,
                messages=build_messages(request),
                max_tokens=request.max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            # `async with` closes the response when a reply is stopped mid-stream.
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = usage_from(chunk.usage)
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            yield TextDelta(choice.delta.content)
                        if choice.finish_reason:
                            finish = choice.finish_reason
        except LLMError:
            raise
        except Exception as exc:  # SDK and transport errors: translate, never leak SDK types
            raise translate_error(exc) from exc
        if finish is None:
            raise StreamBrokenError("the stream ended without a finish_reason")
        yield StreamEnd(STOP_REASONS.get(finish, finish), usage)
