"""The reply's decisions (consumers.reply_policy) with plain values: no model, no clock, no I/O."""

from __future__ import annotations

import random

from consumers.reply_policy import (
    MAX_RETRY_AFTER,
    GiveUp,
    Retry,
    after_retryable,
    breaker_verdict,
    clean_model_text,
    final_status,
    refit_density,
    should_fall_back,
    user_error,
)


def decide(
    attempt: int = 1, received_any: bool = False, retry_after: float | None = None
) -> Retry | GiveUp:
    return after_retryable(
        attempt=attempt,
        max_retries=3,
        received_any=received_any,
        retry_after=retry_after,
        base_delay=0.5,
        rng=random.Random(1),
    )


def test_a_failure_before_the_first_token_is_retried_with_the_next_attempt_number() -> None:
    decision = decide(attempt=1)
    assert isinstance(decision, Retry)
    assert decision.attempt == 2 and 0.25 <= decision.delay <= 0.5


def test_text_already_sent_is_kept_instead_of_retried() -> None:
    assert decide(received_any=True) == GiveUp("upstream_error", "after_first_token")


def test_a_long_retry_after_ends_the_reply_and_a_short_one_is_waited_for() -> None:
    assert decide(retry_after=MAX_RETRY_AFTER + 1) == GiveUp(
        "upstream_unavailable", "retry_after_too_long"
    )
    waited = decide(retry_after=MAX_RETRY_AFTER)
    assert isinstance(waited, Retry) and waited.delay == MAX_RETRY_AFTER


def test_retries_stop_after_the_configured_number() -> None:
    assert isinstance(decide(attempt=3), Retry)
    assert decide(attempt=4) == GiveUp("upstream_unavailable", "out_of_attempts")


def test_only_an_overloaded_anthropic_primary_falls_back() -> None:
    assert should_fall_back("overloaded", "haiku", "sonnet", "anthropic")
    assert not should_fall_back("rate_limited", "haiku", "sonnet", "anthropic")
    assert not should_fall_back("overloaded", "", "sonnet", "anthropic")
    assert not should_fall_back("overloaded", "haiku", "haiku", "anthropic")  # already on it
    assert not should_fall_back("overloaded", "haiku", "sonnet", "heroku")


def test_a_refit_needs_the_models_count_an_estimate_and_no_text_sent() -> None:
    assert refit_density(2000, 1000, received_any=False) == 2.2
    assert refit_density(None, 1000, received_any=False) is None
    assert refit_density(2000, 0, received_any=False) is None
    assert refit_density(2000, 1000, received_any=True) is None


def test_the_breaker_hears_upstream_health_only() -> None:
    assert breaker_verdict("complete", "") is True
    assert breaker_verdict("error", "upstream_unavailable") is False
    assert breaker_verdict("error", "upstream_error") is False
    assert breaker_verdict("error", "configuration") is None
    assert breaker_verdict("stopped", "") is None


def test_an_early_ending_wins_over_anything_but_complete() -> None:
    assert final_status("error", "stopped") == "stopped"
    assert final_status("interrupted", "stopped") == "stopped"
    assert final_status("complete", "stopped") == "complete"
    assert final_status("error", None) == "error"


def test_users_read_a_message_for_each_error_code() -> None:
    assert user_error("complete", "") is None
    unavailable = user_error("error", "upstream_unavailable")
    assert unavailable is not None and "unavailable" in unavailable["message"]
    assert user_error("error", "") == {
        "code": "upstream_error",
        "message": "Claude's reply broke off. The text so far is kept.",
    }


def test_model_text_loses_what_postgresql_cannot_store() -> None:
    assert "\x00" not in clean_model_text("a\x00b") and "a" in clean_model_text("a\x00b")
    assert clean_model_text("plain text") == "plain text"
