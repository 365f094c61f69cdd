"""Which Redis server holds a room, when REDIS_URL names several (SPEC §4).

channels-redis spreads groups over its hosts by a crc32 ring; a room's live state (reply lock,
live text, stop flags, presence) goes to the server that carries the room's group, so one
server's outage touches the same rooms on both paths, and a room's fan-out and its state never
need two servers. These functions mirror channels_redis exactly (tests/test_shards.py checks
them against the layers themselves):

- `channels_redis.utils._consistent_hash`: `crc32(name) & 0xFFF`, then 4096 / ring size ranges;
- `RedisPubSubChannelLayer` hashes the group's channel name, `f"{prefix}__group__{group}"`;
- `RedisChannelLayer` (core) hashes the bare group name.

State that is not a room's (per-user limits, budgets, the circuit breaker) lives on the first
server. Changing the list (adding, removing or reordering servers) moves about half of the
rooms to another server: docs/operations.md says what that does to running rooms.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

RING = 4096  # channels_redis maps crc32 to 0..4095 before dividing the ring


def consistent_hash(value: str, ring_size: int) -> int:
    """The index channels_redis picks for `value` among `ring_size` hosts."""
    if ring_size == 1:
        return 0
    bigval = binascii.crc32(value.encode("utf8")) & 0xFFF
    return int(bigval / (RING / float(ring_size)))


def group_shard(group: str, ring_size: int, *, layer: str, prefix: str) -> int:
    """The host index the channel layer uses for `group` (`layer`: "pubsub" or "core")."""
    if layer == "pubsub":
        return consistent_hash(f"{prefix}__group__{group}", ring_size)
    if layer == "core":
        return consistent_hash(group, ring_size)
    raise ValueError(f"unknown channel layer {layer!r}")


def room_url(room_id: int, urls: Sequence[str], *, layer: str, prefix: str) -> str:
    """The Redis URL that holds room `room_id`'s group and, with it, its live state."""
    from .broadcast import room_group  # the group's one definition

    if not urls:
        raise ValueError("no Redis URL")
    return urls[group_shard(room_group(room_id), len(urls), layer=layer, prefix=prefix)]


def configured_room_urls(first_url: str) -> tuple[tuple[str, ...], str]:
    """(the servers rooms are spread over, the channel layer's kind) as the settings say,
    when `first_url` is their first server; else just that server (a test's own store)."""
    from django.conf import settings

    urls = tuple(getattr(settings, "REDIS_URLS", ()) or ()) if settings.configured else ()
    layer = (
        str(getattr(settings, "REDIS_CHANNEL_LAYER", "pubsub")) if settings.configured else "pubsub"
    )
    if urls and urls[0] == first_url:
        return urls, layer
    return (first_url,), layer
