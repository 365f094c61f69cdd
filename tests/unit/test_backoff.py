"""The retry delay before the first token (consumers.reply_policy.backoff_delay), without a clock."""

from __future__ import annotations

import random

from consumers.reply_policy import MAX_RETRY_DELAY, backoff_delay


def test_the_delay_doubles_per_attempt_with_jitter_in_the_upper_half() -> None:
    rng = random.Random(7)
    # Attempt 2 (the first retry) waits up to the base (1 s); each next one doubles; 30 s cap.
    ceilings = {2: 1.0, 3: 2.0, 4: 4.0, 5: 8.0, 6: 16.0, 7: 30.0}
    assert MAX_RETRY_DELAY == 30.0
    for attempt, ceiling in ceilings.items():
        delays = [backoff_delay(attempt, 1.0, None, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant


def test_the_delay_is_capped() -> None:
    rng = random.Random(7)
    assert all(backoff_delay(40, 1.0, None, rng) <= MAX_RETRY_DELAY for _ in range(50))


def test_the_servers_retry_after_is_a_floor() -> None:
    rng = random.Random(7)
    assert backoff_delay(2, 0.05, 3.5, rng) == 3.5
    assert backoff_delay(6, 1.0, 0.2, rng) >= 8.0  # a short retry-after does not shorten it


def test_retry_after_headers_in_every_form() -> None:
    from chatsite.llm.errors import retry_after_seconds

    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "1.5", "retry-after-ms": "250"}) == 0.25
    date = "Wed, 21 Oct 2026 07:28:30 GMT"
    assert retry_after_seconds({"retry-after": date}, now=1792567700.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after": "-3"}) == 0.0
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None
