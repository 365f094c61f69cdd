"""The project's own small error tree: adapters map SDK errors into it, nothing above sees SDK types."""

from __future__ import annotations


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


class StreamBrokenError(LLMError):
    """The stream ended badly and cannot be resumed: truncated, or an unrecoverable error event."""
