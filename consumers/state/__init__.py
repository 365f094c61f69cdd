"""State shared by every process of the site, one object per concern, each with its Redis
version (any number of processes) and its in-memory twin (the one process `make run` starts
without REDIS_URL) side by side in its module:

- `locks`: the reply lock and the summary lock of each room;
- `livetext`: the running reply's text so far, and stop requests;
- `presence`: who is connected to each room;
- `limits`: rate limits (messages per user per minute, and any other bucket);
- `breaker`: the circuit breaker around the model.

`store.RedisStore` picks the Redis client for a room (`for_room`) or for global state
(`for_global`), names keys and runs Lua scripts. To add a concern: a module here with its
Protocol, `Redis...(store)` and `Memory...()`, a field on `SharedState`, a line in each builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..current import current_process
from .breaker import BreakerState, MemoryBreakerState, RedisBreakerState
from .limits import MemoryRateLimits, RateLimits, RedisRateLimits
from .livetext import LiveText, LiveTexts, MemoryLiveTexts, RedisLiveTexts
from .locks import MemoryRoomLocks, RedisRoomLocks, RoomLocks
from .presence import MemoryPresence, Presence, RedisPresence
from .store import RedisStore

__all__ = [
    "LiveText",
    "RedisStore",
    "SharedState",
    "memory_state",
    "redis_state",
    "shared_state",
]


@dataclass
class SharedState:
    """Everything processes share, by concern."""

    reply_locks: RoomLocks  # one reply per room at a time
    summary_locks: RoomLocks  # one background summarizer per room
    live: LiveTexts
    presence: Presence
    limits: RateLimits
    breaker: BreakerState
    redis: RedisStore | None = None  # None: in this process's memory

    async def ping(self) -> None:
        """Raises when the state is unreachable (health check)."""
        if self.redis is not None:
            await self.redis.ping()


def redis_state(url: str, prefix: str, options: dict[str, Any]) -> SharedState:
    store = RedisStore(url, prefix, options)
    return SharedState(
        reply_locks=RedisRoomLocks(store, "lock"),
        summary_locks=RedisRoomLocks(store, "summary-lock"),
        live=RedisLiveTexts(store),
        presence=RedisPresence(store),
        limits=RedisRateLimits(store),
        breaker=RedisBreakerState(store),
        redis=store,
    )


def memory_state() -> SharedState:
    return SharedState(
        reply_locks=MemoryRoomLocks(),
        summary_locks=MemoryRoomLocks(),
        live=MemoryLiveTexts(),
        presence=MemoryPresence(),
        limits=MemoryRateLimits(),
        breaker=MemoryBreakerState(),
    )


def shared_state() -> SharedState:
    """This server process's shared state (`current_process().state`)."""
    return current_process().state
