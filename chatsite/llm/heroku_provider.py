"""Heroku Managed Inference: OpenAI-style chat completions through the `openai` SDK."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from .base import ChatRequest, StreamEnd, StreamEvent, TextDelta, Usage
from .errors import ConfigurationError, LLMError, RetryableError, StreamBrokenError

# OpenAI finish reasons in Anthropic's words (SPEC: stop -> end_turn, length -> max_tokens).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def build_messages(request: ChatRequest) -> list[dict[str, str]]:
    """Chat messages with plain-string content (Heroku rejects content lists)."""
    messages: list[dict[str, str]] = []
    system = "\n\n".join(part for part in (request.system, request.summary) if part)
    if system:
        messages.append({"role": "system", "content": system})
    messages.extend({"role": turn.role, "content": turn.text} for turn in request.turns)
    return messages


def translate_error(exc: Exception) -> LLMError:
    """Map an openai SDK or transport exception into the project's error tree."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        summary = f"heroku inference {status}: {exc.message}"
        retry_after = None
        raw = exc.response.headers.get("retry-after") if exc.response is not None else None
        if raw:
            try:
                retry_after = max(0.0, float(raw))
            except ValueError:
                retry_after = None
        if status == 429:
            return RetryableError("rate_limited", summary, retry_after)
        if status == 529:
            return RetryableError("overloaded", summary, retry_after)
        if status in {408, 409} or status >= 500:
            return RetryableError("server_error", summary, retry_after)
        return ConfigurationError(summary, status)
    if isinstance(exc, openai.APIConnectionError):
        return RetryableError("connection", f"heroku inference connection error: {exc}")
    if isinstance(exc, openai.APIError):
        # An error object inside the stream.
        return RetryableError("server_error", f"heroku inference stream error: {exc.message}")
    if isinstance(exc, httpx2.TimeoutException):
        return RetryableError("connection", f"stalled: {type(exc).__name__}")
    if isinstance(exc, httpx2.TransportError):
        return RetryableError("connection", f"stream cut: {type(exc).__name__}: {exc}")
    return StreamBrokenError(f"{type(exc).__name__}: {exc}")


class HerokuProvider:
    """Streams replies from the model attached to the app as INFERENCE."""

    name = "heroku"

    def __init__(self, url: str, key: str, model_id: str, stall_timeout: float = 30.0) -> None:
        self.base_url = url.rstrip("/") + "/v1"
        self.key = key  # never logged
        self.model_id = model_id
        self.stall_timeout = stall_timeout
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
                max_retries=0,
                timeout=httpx2.Timeout(60.0, connect=10.0, read=self.stall_timeout),
            )
            self._clients[loop] = client
        return client

    def model_for(self, room_model: str) -> str:
        return self.model_id

    def selectable_models(self) -> list[str]:
        return []

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        finish: str | None = None
        usage = Usage()
        try:
            stream = await self.client().chat.completions.create(
                model=self.model_id,
                messages=build_messages(request),  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = Usage(
                        input_tokens=chunk.usage.prompt_tokens or 0,
                        output_tokens=chunk.usage.completion_tokens or 0,
                    )
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
