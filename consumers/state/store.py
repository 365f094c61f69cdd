"""Where shared state lives in Redis: the client for a room, the client for global state, key
names and Lua scripts loaded once per client (`register_script`: EVALSHA, reloaded by redis-py
after a Redis restart).

One redis-py client per URL and event loop (a connection pool belongs to one loop). Sharding
rooms over several Redis servers means changing `url_for_room` only: every room key goes
through `for_room`, everything else through `for_global`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from chatsite.redis_pool import redis_client


class RedisStore:
    """Clients, keys and scripts for the Redis-backed state of every concern."""

    def __init__(self, url: str, prefix: str, options: dict[str, Any]) -> None:
        self.url = url  # the Redis of global state (and, today, of every room)
        self.prefix = prefix  # every key starts with it
        self.options = options  # passed to redis-py (timeouts, TLS)
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, aioredis.Redis]
        ] = weakref.WeakKeyDictionary()
        self._scripts: dict[str, AsyncScript] = {}

    def url_for_room(self, room_id: int) -> str:
        """The Redis that holds a room's keys (one server today)."""
        return self.url

    def for_room(self, room_id: int) -> aioredis.Redis:
        """The client for a room's keys (locks, live text, stop flags, presence)."""
        return self._client(self.url_for_room(room_id))

    def for_global(self) -> aioredis.Redis:
        """The client for state that belongs to no room (rate limits, breaker, room index)."""
        return self._client(self.url)

    def _client(self, url: str) -> aioredis.Redis:
        by_url = self._clients.setdefault(asyncio.get_running_loop(), {})
        client = by_url.get(url)
        if client is None:
            # Waits for a free connection rather than raising when a burst empties the pool.
            client = redis_client(url, self.options)
            by_url[url] = client
        return client

    def key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    def room_key(self, room_id: int, *parts: object) -> str:
        return self.key("room", room_id, *parts)

    async def run(self, client: aioredis.Redis, source: str, keys: list[str], *args: object) -> Any:
        """Run a Lua script on `client` by its SHA, registered once per store (EVALSHA; redis-py
        loads it again when a restarted Redis no longer knows it)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        return await script(keys=keys, args=list(args), client=client)  # type: ignore[arg-type]

    async def ping(self) -> None:
        await self.for_global().ping()
