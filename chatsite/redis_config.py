"""Redis connection options and the channel layer built from the configured servers."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def redis_connection_options(url: str) -> dict[str, Any]:
    """Options for every Redis client we open (channel layer and shared state)."""
    options: dict[str, Any] = {
        # redis-py 8 defaults to a 5 s socket timeout, which kills idle blocking reads.
        "socket_timeout": 15,
        "socket_connect_timeout": 5,
        "health_check_interval": 10,
        # redis-py's own default (10 retries, up to 1 s apart) makes every call hang for
        # seconds while Redis is down, and a pool without a client (the channel layer's) gets
        # none, so the first PUBLISH after a restart fails on a dead pooled connection. Two
        # quick retries on connection errors only: a timed-out command may have run already.
        "retry": Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2, (RedisConnectionError,)
        ),
    }
    if url.startswith("rediss://"):
        # Heroku Redis presents self-signed certificates; plain redis:// rejects this option.
        options["ssl_cert_reqs"] = None
    return options


def redis_hosts(urls: list[str]) -> list[dict[str, Any]]:
    """channels-redis host dicts, in the list's order (the order decides each room's server);
    TLS options per server, since only rediss:// accepts them."""
    if len(set(urls)) != len(urls):
        raise ImproperlyConfigured("REDIS_URL names the same server twice")
    return [{"address": url, **redis_connection_options(url)} for url in urls]


def channel_layers(hosts: list[dict[str, Any]], prefix: str, kind: str) -> dict[str, Any]:
    """CHANNEL_LAYERS: Redis (`pubsub` or `core`) over `hosts`, or in memory without any."""
    if not hosts:
        return {
            "default": {
                "BACKEND": "channels.layers.InMemoryChannelLayer",
                "CONFIG": {"capacity": 5000},
            }
        }
    if kind == "core":
        # A process's sockets share one inbox: size it for many tabs per process.
        config: dict[str, Any] = {"hosts": hosts, "capacity": 5000, "prefix": prefix}
        return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": config}}
    if kind == "pubsub":
        return {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": hosts, "prefix": prefix},
            }
        }
    raise ImproperlyConfigured("REDIS_CHANNEL_LAYER must be pubsub or core")
