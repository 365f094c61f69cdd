"""Fixed-window rate limits shared by every process: how many hits a subject (a user, an
address) may make per window in a named bucket, and how long to wait once over."""

from __future__ import annotations

import time
from typing import Protocol

from .store import RedisStore

MESSAGES = "rate"  # the bucket of chat messages per user (CHAT_RATE_PER_MINUTE)


class RateLimits(Protocol):
    async def hit(
        self, subject: object, limit: int, window: float, bucket: str = MESSAGES
    ) -> float | None:
        """Count one hit; None while within `limit` per `window` seconds, else seconds to wait."""
        ...


_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return ttl
end
return -1
"""


class RedisRateLimits:
    """A counter `<prefix>:<bucket>:<subject>` that expires with its window."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    async def hit(
        self, subject: object, limit: int, window: float, bucket: str = MESSAGES
    ) -> float | None:
        key = self.store.key(bucket, subject)
        client = self.store.for_global()
        ttl_ms = int(await self.store.run(client, _HIT, [key], limit, int(window * 1000)))
        return None if ttl_ms < 0 else max(0.001, ttl_ms / 1000)


class MemoryRateLimits:
    """The same inside one process."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, str], tuple[int, float]] = {}  # -> (count, reset_at)

    async def hit(
        self, subject: object, limit: int, window: float, bucket: str = MESSAGES
    ) -> float | None:
        now = time.monotonic()
        key = (bucket, str(subject))
        count, reset_at = self.windows.get(key, (0, now + window))
        if reset_at <= now:
            count, reset_at = 0, now + window
        count += 1
        self.windows[key] = (count, reset_at)
        return None if count <= limit else max(0.001, reset_at - now)
