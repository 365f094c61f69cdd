"""Token buckets kept in this process: per-socket and per-user pacing, and the fallback limiter
when the shared (Redis) one cannot answer. Pure apart from the clock; bounded in memory."""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable

Clock = Callable[[], float]


class TokenBucket:
    """`burst` actions at once, refilled at `rate` a second."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until one action is allowed (0: now), without taking it."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> float:
        """Take one action if allowed (returns 0), else the seconds to wait (nothing taken)."""
        wait = self.wait(now)
        if wait == 0.0:
            self.tokens -= 1
        return wait

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class KeyedBuckets:
    """One TokenBucket per key (a user, a socket), at most `max_keys` of them.

    When full, the least recently used key is forgotten: a forgotten bucket starts full again,
    so the bound costs at most one burst for a key idle longer than everyone else's.
    """

    def __init__(
        self, rate: float, burst: float, *, max_keys: int = 10_000, clock: Clock = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def _bucket(self, key: Hashable) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, self.clock())
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: Hashable) -> float:
        """0 if `key` may act now (and it is counted), else the seconds until it may."""
        return self._bucket(key).take(self.clock())

    def wait(self, key: Hashable) -> float:
        """Seconds until `key` may act, counting nothing."""
        return self._bucket(key).wait(self.clock())

    def __len__(self) -> int:
        return len(self._buckets)


class PerProcess:
    """KeyedBuckets of the current server process (a fresh set for each process object, as
    tests make one per test), or of this module when no process is installed."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._by_owner: weakref.WeakKeyDictionary[object, KeyedBuckets] = (
            weakref.WeakKeyDictionary()
        )
        self._fallback = KeyedBuckets(rate, burst)

    def buckets(self) -> KeyedBuckets:
        from .current import current_process

        try:
            owner: object = current_process()
        except RuntimeError:
            return self._fallback
        buckets = self._by_owner.get(owner)
        if buckets is None:
            buckets = self._by_owner[owner] = KeyedBuckets(self.rate, self.burst)
        return buckets
