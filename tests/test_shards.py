"""Room sharding over several Redis servers mirrors channels-redis exactly (issue 16): the
layers themselves, built with several hosts, say which server carries each room's group."""

from __future__ import annotations

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from consumers.broadcast import room_group
from consumers.shards import consistent_hash, group_shard, room_url

PREFIX = "roomchat"


def hosts(n: int) -> list[dict[str, str]]:
    return [{"address": f"redis://127.0.0.1:{7000 + i}/0"} for i in range(n)]


@pytest.mark.parametrize("ring", [1, 2, 3, 5])
async def test_pubsub_layer_puts_each_room_group_where_room_url_says(ring: int) -> None:
    layer = RedisPubSubChannelLayer(hosts=hosts(ring), prefix=PREFIX)
    try:
        shards = layer._shards
        urls = [host["address"] for host in hosts(ring)]
        for room_id in range(1, 1500):
            group = room_group(room_id)
            shard = layer._get_shard(layer._get_group_channel_name(group))
            expected = shards.index(shard)
            assert group_shard(group, ring, layer="pubsub", prefix=PREFIX) == expected
            assert room_url(room_id, urls, layer="pubsub", prefix=PREFIX) == urls[expected]
    finally:
        await layer.flush()


@pytest.mark.parametrize("ring", [1, 2, 3, 5])
def test_core_layer_puts_each_room_group_where_room_url_says(ring: int) -> None:
    layer = RedisChannelLayer(hosts=hosts(ring), prefix=PREFIX)
    urls = [host["address"] for host in hosts(ring)]
    for room_id in range(1, 1500):
        expected = layer.consistent_hash(room_group(room_id))
        assert group_shard(room_group(room_id), ring, layer="core", prefix=PREFIX) == expected
        assert room_url(room_id, urls, layer="core", prefix=PREFIX) == urls[expected]


def test_rooms_spread_over_every_server() -> None:
    counts = [0, 0, 0]
    for room_id in range(1, 3001):
        counts[group_shard(room_group(room_id), 3, layer="pubsub", prefix=PREFIX)] += 1
    assert min(counts) > 800, counts  # about a third each


def test_adding_a_server_moves_rooms() -> None:
    """What the README warns about: a new list sends a share of the rooms elsewhere."""
    moved = sum(
        consistent_hash(f"{PREFIX}__group__room.{i}", 2)
        != consistent_hash(f"{PREFIX}__group__room.{i}", 3)
        for i in range(1, 3001)
    )
    assert 0.4 < moved / 3000 < 0.6, moved  # ranges, not a hash ring: about half move


async def test_the_state_store_puts_each_room_on_its_server_with_tls_options_per_server() -> None:
    from consumers.state.store import RedisStore

    urls = ("rediss://a.example:6380", "redis://b.example:6379/0")
    # The settings' options for the first server (rediss://): ssl_cert_reqs=None.
    store = RedisStore(
        urls[0], PREFIX, {"socket_timeout": 15, "ssl_cert_reqs": None}, room_urls=urls
    )
    seen = set()
    for room_id in range(1, 60):
        url = store.url_for_room(room_id)
        assert url == room_url(room_id, urls, layer="pubsub", prefix=PREFIX)
        kwargs = store.for_room(room_id).connection_pool.connection_kwargs
        if url.startswith("rediss://"):
            assert "ssl_cert_reqs" in kwargs and kwargs["ssl_cert_reqs"] is None
        else:
            assert "ssl_cert_reqs" not in kwargs  # redis:// would raise TypeError on it
        assert kwargs["socket_timeout"] == 15
        seen.add(url)
    assert seen == set(urls)
    global_kwargs = store.for_global().connection_pool.connection_kwargs
    assert store.url == urls[0] and global_kwargs["ssl_cert_reqs"] is None
