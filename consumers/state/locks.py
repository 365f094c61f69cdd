"""Owned, expiring locks per room, across processes: the reply lock (one reply per room at a
time) and the summary lock (one background summarizer per room). A lock is held by a token;
only its holder renews or releases it, and it expires if the holder dies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from .store import RedisStore


class RoomLocks(Protocol):
    async def acquire(self, room_id: int, token: str, ttl: float) -> bool:
        """Take the room's lock for `ttl` seconds; False if someone holds it."""
        ...

    async def renew(self, room_id: int, token: str, ttl: float) -> bool:
        """Extend our lock, or take it back if it was lost; False if another holds it."""
        ...

    async def release(self, room_id: int, token: str) -> None:
        """Free the lock if we hold it."""
        ...

    async def held(self, room_id: int) -> bool:
        """Whether anyone holds the room's lock."""
        ...


# Renew only our own lock; re-take it if Redis lost it (a restart wipes everything).
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not v then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRoomLocks:
    """Locks as keys `<prefix>:room:<id>:<name>` holding the owner's token, with a TTL."""

    def __init__(self, store: RedisStore, name: str) -> None:
        self.store = store
        self.name = name  # "lock" (replies) or "summary-lock"

    def _key(self, room_id: int) -> str:
        return self.store.room_key(room_id, self.name)

    async def acquire(self, room_id: int, token: str, ttl: float) -> bool:
        client = self.store.for_room(room_id)
        return bool(await client.set(self._key(room_id), token, nx=True, px=int(ttl * 1000)))

    async def renew(self, room_id: int, token: str, ttl: float) -> bool:
        client = self.store.for_room(room_id)
        return bool(
            await self.store.run(client, _RENEW, [self._key(room_id)], token, int(ttl * 1000))
        )

    async def release(self, room_id: int, token: str) -> None:
        client = self.store.for_room(room_id)
        await self.store.run(client, _RELEASE, [self._key(room_id)], token)

    async def held(self, room_id: int) -> bool:
        return bool(await self.store.for_room(room_id).exists(self._key(room_id)))


@dataclass
class _Lock:
    token: str
    expires: float  # time.monotonic()


class MemoryRoomLocks:
    """The same locks inside one process."""

    def __init__(self) -> None:
        self.locks: dict[int, _Lock] = {}

    def _held(self, room_id: int) -> _Lock | None:
        lock = self.locks.get(room_id)
        if lock is not None and lock.expires <= time.monotonic():
            del self.locks[room_id]
            return None
        return lock

    async def acquire(self, room_id: int, token: str, ttl: float) -> bool:
        if self._held(room_id) is not None:
            return False
        self.locks[room_id] = _Lock(token, time.monotonic() + ttl)
        return True

    async def renew(self, room_id: int, token: str, ttl: float) -> bool:
        lock = self._held(room_id)
        if lock is not None and lock.token != token:
            return False
        self.locks[room_id] = _Lock(token, time.monotonic() + ttl)
        return True

    async def release(self, room_id: int, token: str) -> None:
        lock = self._held(room_id)
        if lock is not None and lock.token == token:
            del self.locks[room_id]

    async def held(self, room_id: int) -> bool:
        return self._held(room_id) is not None
