"""How a reply decides: retry or give up, which model, how it ends and what users read (pure).

No I/O and no clock: the reply job (`consumers.reply_job`) asks these and does what they say,
so every rule here can be tested with plain values.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from .protocol import ReplyErrorCode, clean_text

# A stored reply's ending (`Message.status` once it no longer streams).
ReplyStatus = Literal["complete", "stopped", "error", "interrupted"]
# How someone ends a running reply early: a person's Stop, or the process/room moving on.
EarlyEnding = Literal["stopped", "interrupted"]
# Why a retryable failure ends the reply instead (each is logged in its own words).
GiveUpReason = Literal["after_first_token", "retry_after_too_long", "out_of_attempts"]

MAX_RETRY_DELAY = 30.0  # seconds: the longest backoff we choose ourselves
MAX_RETRY_AFTER = 60.0  # seconds: a longer retry-after from the server ends the reply instead
REFIT_MARGIN = 1.1  # a request refitted after "too long" aims this much below the model's count
USER_MESSAGES: dict[str, str] = {
    "upstream_unavailable": "Claude is unavailable right now. Please try again in a moment.",
    "upstream_error": "Claude's reply broke off. The text so far is kept.",
    "configuration": "The server is misconfigured, so Claude cannot answer. An operator has "
    "been told.",
}
DEFAULT_USER_MESSAGE = "Claude could not answer."


def backoff_delay(
    attempt: int, base: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before `attempt` (2 for the first retry): doubling, jittered, capped,
    and never shorter than the server's retry-after."""
    ceiling = min(MAX_RETRY_DELAY, base * 2.0 ** (attempt - 2))
    delay = ceiling * rng.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class Retry:
    """Try again: attempt number `attempt` after `delay` seconds."""

    attempt: int
    delay: float


@dataclass(frozen=True)
class GiveUp:
    """End the reply as an error with `code`."""

    code: ReplyErrorCode
    reason: GiveUpReason


def after_retryable(
    *,
    attempt: int,
    max_retries: int,
    received_any: bool,
    retry_after: float | None,
    base_delay: float,
    rng: random.Random,
) -> Retry | GiveUp:
    """What to do after attempt `attempt` failed with a retryable error.

    Text that already reached the room would be repeated by a retry: the part is kept. A
    server asking for more than MAX_RETRY_AFTER would hold the room for nobody's good.
    """
    if received_any:
        return GiveUp("upstream_error", "after_first_token")
    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
        return GiveUp("upstream_unavailable", "retry_after_too_long")
    if attempt > max_retries:
        return GiveUp("upstream_unavailable", "out_of_attempts")
    following = attempt + 1
    return Retry(following, backoff_delay(following, base_delay, retry_after, rng))


def give_up_words(decision: GiveUp, attempt: int, retry_after: float | None) -> str:
    """Why the reply gave up, for the operators' log line."""
    if decision.reason == "after_first_token":
        return "broke after the first token (a retry would repeat its text)"
    if decision.reason == "retry_after_too_long":
        return f"gave up: the model asks to wait {retry_after or 0:.0f} s"
    return f"gave up after {attempt} attempts"


def failure_code(received_any: bool) -> ReplyErrorCode:
    """The code of a reply that broke: after its first text the part is kept (upstream_error)."""
    return "upstream_error" if received_any else "upstream_unavailable"


def should_fall_back(reason: str, fallback: str, model: str, provider_name: str) -> bool:
    """Whether to switch to the fallback model: only when Anthropic's primary is overloaded.

    Once switched, the remaining attempts stay on the fallback (`model` is then the fallback).
    """
    return (
        reason == "overloaded"
        and bool(fallback)
        and fallback != model
        and provider_name == "anthropic"
    )


def refit_density(input_tokens: int | None, estimated: int, received_any: bool) -> float | None:
    """The density to rebuild a too-long request for (tokens per estimated token), or None
    when it cannot be refitted (no count from the model, no estimate, or text already sent)."""
    if input_tokens is None or not estimated or received_any:
        return None
    return input_tokens / estimated * REFIT_MARGIN


def breaker_verdict(status: str, error_code: str) -> bool | None:
    """What the circuit breaker hears about a reply: True (success), False (an upstream
    failure) or None (stopped, interrupted or misconfigured: nothing about upstream health)."""
    if status == "complete":
        return True
    if error_code in {"upstream_unavailable", "upstream_error"}:
        return False
    return None


def final_status(status: str, ending: EarlyEnding | None) -> str:
    """The stored status: an early ending (stop, interrupt) wins over anything but complete."""
    if ending is not None and status != "complete":
        return ending
    return status


def user_error(status: str, error_code: str) -> dict[str, str] | None:
    """`generation.finished.error`: the code and the words users read (None unless an error)."""
    if status != "error":
        return None
    code = error_code or "upstream_error"
    return {"code": code, "message": USER_MESSAGES.get(code, DEFAULT_USER_MESSAGE)}


def clean_model_text(text: str) -> str:
    """Model text without NULs and lone surrogates, which PostgreSQL cannot store."""
    return (
        clean_text(text) if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text) else text
    )
