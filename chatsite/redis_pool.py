"""The one way this project opens a Redis client for shared state (issue 12).

redis-py's default async pool holds 100 connections and raises `Too many connections` when a
burst wants more: a rate limit, a presence update or a budget read then fails exactly when the
service is busiest. A `BlockingConnectionPool` makes the burst wait for a free connection, up to
POOL_WAIT_TIMEOUT seconds, and only then fail. (The channel layer's pools are channels-redis's
own.) A client and its pool belong to one event loop: callers keep one per loop.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

# Connections one client may hold, and how long a command waits for one when all are busy.
POOL_MAX_CONNECTIONS = 100
POOL_WAIT_TIMEOUT = 5.0


def redis_client(url: str, options: dict[str, Any]) -> aioredis.Redis:
    """A client for `url` (decoded responses) whose pool waits rather than raises when full."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_MAX_CONNECTIONS,
        timeout=POOL_WAIT_TIMEOUT,
        decode_responses=True,
        **options,
    )
    return aioredis.Redis(connection_pool=pool)
