"""Rate limits that fail closed (issue 12): the shared (Redis) count when it answers, and this
process's own token buckets always, so a flood meets a limit even while Redis cannot count.

Before, a limiter error meant "allow": a burst that exhausted the Redis pool, or a paused Redis,
let every message through exactly when the service was under attack. Here a subject must pass
the shared count, which gets SHARED_TIMEOUT to answer, and its bucket in this process (no I/O;
the same `limit` per `window`). When Redis cannot answer, the local verdict stands alone and
Redis is left alone for SHARED_BACKOFF seconds, so a paused Redis does not slow every frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Hashable

from .state import shared_state
from .throttle import KeyedBuckets

log = logging.getLogger(__name__)

SHARED_TIMEOUT = 2.0  # seconds the shared count may take before the local one decides
SHARED_BACKOFF = 5.0  # after a failure, seconds of local-only limits
_WARN_EVERY = 30.0  # one warning per this many seconds, not one per refused hit

# Local counts per shared-state object: a process has one; tests that swap it start afresh.
_buckets: weakref.WeakKeyDictionary[object, dict[tuple[str, int, float], KeyedBuckets]] = (
    weakref.WeakKeyDictionary()
)
_shared_down_until = 0.0


class _NoProcess:
    """Stands for the shared state where this process has none."""


_NO_PROCESS = _NoProcess()
_warned_at = -_WARN_EVERY


def _local(limits: object, bucket: str, limit: int, window: float) -> KeyedBuckets:
    by_key = _buckets.setdefault(limits, {})
    key = (bucket, limit, window)
    buckets = by_key.get(key)
    if buckets is None:
        buckets = by_key[key] = KeyedBuckets(limit / window, float(limit))
    return buckets


def _shared_failed(bucket: str, exc: BaseException) -> None:
    global _shared_down_until, _warned_at
    now = time.monotonic()
    _shared_down_until = now + SHARED_BACKOFF
    if now - _warned_at >= _WARN_EVERY:
        _warned_at = now
        log.warning(
            "shared rate limits unavailable (%s: %s): limiting in this process meanwhile",
            type(exc).__name__,
            exc,
        )


async def hit(subject: Hashable, limit: int, window: float, bucket: str = "rate") -> float | None:
    """Count one hit of `subject` in `bucket`: None if allowed, else seconds to wait."""
    try:
        limits: object = shared_state().limits
    except RuntimeError:  # no server process here (a management command, plain HTTP tests)
        limits = _NO_PROCESS
    if limits is not _NO_PROCESS and time.monotonic() >= _shared_down_until:
        try:
            shared = shared_state().limits.hit(subject, limit, window, bucket=bucket)
            wait = await asyncio.wait_for(shared, SHARED_TIMEOUT)
        except Exception as exc:  # Redis down, paused, or its pool exhausted: see below
            _shared_failed(bucket, exc)
        else:
            if wait is not None:
                return wait
    # Allowed by the shared count, or it could not answer: this process's count decides.
    local_wait = _local(limits, bucket, limit, window).take(subject)
    return local_wait or None


def reset() -> None:
    """Forget every local count (tests)."""
    global _shared_down_until
    _buckets.clear()
    _shared_down_until = 0.0
