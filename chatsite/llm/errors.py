"""The project's own small error tree: adapters map SDK errors into it, nothing above sees SDK types."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

# HTTP statuses that say the request itself is wrong (key, model, size): retrying cannot help.
CONFIGURATION_STATUSES = frozenset({400, 401, 402, 403, 404, 413, 422})


class LLMError(Exception):
    """A model call failed; `detail` is for operators (logs), never shown to users verbatim."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RetryableError(LLMError):
    """Worth trying again: rate limited, overloaded, a 5xx, or the connection failed."""

    # One of: rate_limited, overloaded, server_error, connection (SPEC generation.retrying).
    reason: str
    # The server's retry-after in seconds, when it sent one.
    retry_after: float | None

    def __init__(self, reason: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.retry_after = retry_after


class ConfigurationError(LLMError):
    """The model refused the request itself (400, 401, 403, 404, 413): retrying cannot help."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


class ContextTooLongError(ConfigurationError):
    """The request did not fit the model's context window; `input_tokens` as the API counted
    them, when it said."""

    def __init__(self, detail: str, status: int | None = None, input_tokens: int | None = None):
        super().__init__(detail, status)
        self.input_tokens = input_tokens


# "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000" (Anthropic),
# "prompt is too long: 210000 tokens > 200000 maximum" (Anthropic, older models),
# "... However, you requested 210000 tokens (209000 in the messages, ..." (OpenAI style).
_TOO_LONG = re.compile(
    r"exceed context limit: (?P<a>\d+)|prompt is too long: (?P<b>\d+)|\((?P<c>\d+) in the messages"
)


def context_too_long(message: str, status: int) -> ContextTooLongError | None:
    """The error for an API refusal that says the request exceeded the context window."""
    lowered = message.lower()
    if not any(
        phrase in lowered
        for phrase in ("context limit", "prompt is too long", "maximum context length")
    ):
        return None
    match = _TOO_LONG.search(message)
    tokens = next((int(v) for v in match.groupdict().values() if v), None) if match else None
    return ContextTooLongError(message, status, tokens)


class StreamBrokenError(LLMError):
    """The stream ended badly and cannot be resumed: truncated, or an unrecoverable error event."""


def from_http_status(status: int, summary: str, retry_after: float | None) -> LLMError:
    """The one classifier of an HTTP refusal before the stream starts, for every provider.

    429 rate limited, 529 overloaded, 408/409/5xx server errors are retried (honouring the
    server's retry-after); a "too long" 400/413 can be refitted; the documented configuration
    statuses end the reply as `configuration`; anything else is an answer the API does not
    document, reported as a broken stream rather than blamed on the operator.
    """
    if status == 429:
        return RetryableError("rate_limited", summary, retry_after)
    if status == 529:
        return RetryableError("overloaded", summary, retry_after)
    if status in {408, 409} or status >= 500:
        return RetryableError("server_error", summary, retry_after)
    too_long = context_too_long(summary, status) if status in {400, 413} else None
    if too_long is not None:
        return too_long
    if status in CONFIGURATION_STATUSES:
        return ConfigurationError(summary, status)
    return StreamBrokenError(summary)


def from_transport(exc: Exception) -> LLMError | None:
    """A stall or a cut connection underneath either SDK (httpx2), or None if it is neither."""
    import httpx2

    if isinstance(exc, httpx2.TimeoutException):
        return RetryableError("connection", f"stalled: no data for too long ({type(exc).__name__})")
    if isinstance(exc, httpx2.TransportError):
        return RetryableError("connection", f"stream cut: {type(exc).__name__}: {exc}")
    return None


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """How long the server asked us to wait: `retry-after-ms`, else `retry-after` in seconds or
    as an HTTP date (RFC 9110); None when it did not say (or said something unreadable)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
