"""Where shared state lives in Redis: the client for a room, the client for global state, key
names and Lua scripts loaded once per client (`register_script`: EVALSHA, reloaded by redis-py
after a Redis restart).

One redis-py client per URL and event loop (a connection pool belongs to one loop). With
several servers (REDIS_URL as a comma list) `url_for_room` puts each room on the server that
carries its channel-layer group (consumers/shards.py); every room key goes through `for_room`,
everything else through `for_global`, the first server.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from chatsite.redis_pool import redis_client

from ..shards import configured_room_urls, room_url


class RedisStore:
    """Clients, keys and scripts for the Redis-backed state of every concern."""

    def __init__(
        self,
        url: str,
        prefix: str,
        options: dict[str, Any],
        *,
        room_urls: tuple[str, ...] | None = None,
        layer: str | None = None,
    ) -> None:
        self.url = url  # the Redis of global state (the first server)
        self.prefix = prefix  # every key starts with it
        self.options = options  # passed to redis-py (timeouts, TLS)
        # Every server rooms are spread over, in REDIS_URL's order, and the channel layer whose
        # sharding they follow; by default what the settings say when `url` is their first.
        configured, configured_layer = configured_room_urls(url)
        self.room_urls = room_urls or configured
        self.layer = layer or configured_layer
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, aioredis.Redis]
        ] = weakref.WeakKeyDictionary()
        self._scripts: dict[str, AsyncScript] = {}

    def url_for_room(self, room_id: int) -> str:
        """The Redis that holds a room's keys: the server of the room's channel-layer group."""
        if len(self.room_urls) == 1:
            return self.room_urls[0]
        return room_url(room_id, self.room_urls, layer=self.layer, prefix=self.prefix)

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
            client = redis_client(url, self._options_for(url))
            by_url[url] = client
        return client

    def _options_for(self, url: str) -> dict[str, Any]:
        """Heroku's self-signed certificates on every rediss:// server; redis:// refuses the
        option (TypeError), so a mixed list gets it per server."""
        options = dict(self.options)
        if url.startswith("rediss://"):
            options["ssl_cert_reqs"] = None
        else:
            options.pop("ssl_cert_reqs", None)
        return options

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

    async def server_ids(self) -> str:
        """Every server's INFO run_id, in order: it changes when any of them restarted (and
        lost its keys). Raises when one does not answer."""
        ids = []
        for url in dict.fromkeys((self.url, *self.room_urls)):
            info = await self._client(url).info("server")
            ids.append(str(info.get("run_id", "")))
        return ",".join(ids)

    async def ping(self) -> None:
        """Raises unless every server answers (a room's state may be on any of them)."""
        for url in dict.fromkeys((self.url, *self.room_urls)):
            await self._client(url).ping()
