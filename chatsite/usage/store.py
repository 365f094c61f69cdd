"""Where budgets and live metrics are counted across processes: Redis, or memory without it.

Budget counters hold micro-USD (integers) per scope and UTC day. They are a cache of the ledger:
a missing counter (a new day, a wiped Redis) is rebuilt from the ledger by whoever reads it,
and charges only add to counters that exist, so a rebuilt counter never counts a charge twice.
Rebuilt counters also expire after REBUILD_TTL, so a charge that raced a rebuild is counted
again from the ledger within minutes. The state of other features (locks, presence) is not
here: this module is only about spend and metrics, on REDIS_URL's first server (SPEC §4).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, Protocol

import redis.asyncio as aioredis
from django.conf import settings

from chatsite.redis_pool import redis_client

REBUILD_TTL = 600  # seconds a counter rebuilt from the ledger lives before it is rebuilt again

# Add to each counter that exists; returns 1 per key added to, 0 per key missing.
_ADD_IF_PRESENT = """
local added = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('INCRBY', key, ARGV[i])
    added[i] = 1
  else
    added[i] = 0
  end
end
return added
"""


class CounterStore(Protocol):
    async def get_many(self, keys: list[str]) -> list[int | None]: ...
    async def set_if_absent(self, key: str, value: int, ttl: int) -> int: ...
    async def add_if_present(self, amounts: dict[str, int]) -> None: ...
    async def flag_once(self, key: str, ttl: int) -> bool: ...
    async def hincr(self, key: str, field: str, amount: int = 1) -> None: ...
    async def hgetall(self, key: str) -> dict[str, int]: ...
    async def put(self, key: str, value: int, ttl: int) -> None: ...
    async def sum_prefix(self, prefix: str) -> int: ...


def key(*parts: object) -> str:
    """A key of this module: REDIS_KEY_PREFIX:usage:parts."""
    return ":".join([settings.REDIS_KEY_PREFIX, "usage", *map(str, parts)])


class RedisCounters:
    """Counters on the first Redis server; one client per event loop."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.options = options
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def redis(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = redis_client(self.url, self.options)  # waits when the pool is busy
            self._clients[loop] = client
        return client

    async def get_many(self, keys: list[str]) -> list[int | None]:
        values = await self.redis().mget(keys)
        return [None if v is None else int(v) for v in values]

    async def set_if_absent(self, key: str, value: int, ttl: int) -> int:
        """Set the counter unless someone did first; the counter's value either way."""
        async with self.redis().pipeline(transaction=False) as pipe:  # one round trip
            pipe.set(key, value, ex=ttl, nx=True)
            pipe.get(key)
            _, current = await pipe.execute()
        return value if current is None else int(current)

    async def add_if_present(self, amounts: dict[str, int]) -> None:
        if amounts:
            keys = list(amounts)
            await self.redis().eval(_ADD_IF_PRESENT, len(keys), *keys, *amounts.values())

    async def flag_once(self, key: str, ttl: int) -> bool:
        return bool(await self.redis().set(key, "1", ex=ttl, nx=True))

    async def hincr(self, key: str, field: str, amount: int = 1) -> None:
        await self.redis().hincrby(key, field, amount)

    async def hgetall(self, key: str) -> dict[str, int]:
        raw = await self.redis().hgetall(key)
        return {k if isinstance(k, str) else k.decode(): int(v) for k, v in raw.items()}

    async def put(self, key: str, value: int, ttl: int) -> None:
        await self.redis().set(key, value, ex=ttl)

    async def sum_prefix(self, prefix: str) -> int:
        client = self.redis()
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if not keys:
            return 0
        return sum(int(v) for v in await client.mget(keys) if v is not None)


class MemoryCounters:
    """The same in this process's memory (no REDIS_URL: one process only)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, float]] = {}  # key → (value, expires at, monotonic)
        self.hashes: dict[str, dict[str, int]] = {}

    def _get(self, key: str) -> int | None:
        found = self.values.get(key)
        if found is None or found[1] <= time.monotonic():
            self.values.pop(key, None)
            return None
        return found[0]

    async def get_many(self, keys: list[str]) -> list[int | None]:
        return [self._get(k) for k in keys]

    async def set_if_absent(self, key: str, value: int, ttl: int) -> int:
        current = self._get(key)
        if current is not None:
            return current
        self.values[key] = (value, time.monotonic() + ttl)
        return value

    async def add_if_present(self, amounts: dict[str, int]) -> None:
        for name, amount in amounts.items():
            if self._get(name) is not None:
                value, expires = self.values[name]
                self.values[name] = (value + amount, expires)

    async def flag_once(self, key: str, ttl: int) -> bool:
        if self._get(key) is not None:
            return False
        self.values[key] = (1, time.monotonic() + ttl)
        return True

    async def hincr(self, key: str, field: str, amount: int = 1) -> None:
        table = self.hashes.setdefault(key, {})
        table[field] = table.get(field, 0) + amount

    async def hgetall(self, key: str) -> dict[str, int]:
        return dict(self.hashes.get(key, {}))

    async def put(self, key: str, value: int, ttl: int) -> None:
        self.values[key] = (value, time.monotonic() + ttl)

    async def sum_prefix(self, prefix: str) -> int:
        return sum(v for k in list(self.values) if k.startswith(prefix) and (v := self._get(k)))


_store: CounterStore | None = None


def counters() -> CounterStore:
    """This process's counter store: Redis when REDIS_URL is set, else memory."""
    global _store
    if _store is None:
        if settings.REDIS_URL:
            _store = RedisCounters(settings.REDIS_URL, settings.REDIS_OPTIONS)
        else:
            _store = MemoryCounters()
    return _store


def reset_counters() -> None:
    """Forget the store (tests switch settings)."""
    global _store
    _store = None
