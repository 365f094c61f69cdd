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
