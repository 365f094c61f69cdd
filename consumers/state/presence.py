"""Who is connected to each room, on any process: one entry per connection, refreshed by its
process and gone PRESENCE_TTL after that process stops refreshing it (it died)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, cast

import redis.asyncio as aioredis
from django.conf import settings

from .store import RedisStore


def presence_ttl() -> float:
    """Seconds a connection not refreshed stays present (its process died): PRESENCE_TTL."""
    return float(settings.PRESENCE_TTL)


# (room_id, conn_id, username) of one connection.
PresenceEntry = tuple[int, str, str]


class Presence(Protocol):
    async def join(self, room_id: int, conn_id: str, username: str) -> tuple[list[str], bool]:
        """Mark a connection present: the room's sorted usernames now, and whether this
        username is new there (no other live connection of it was present)."""
        ...

    async def leave(self, room_id: int, conn_id: str) -> None: ...
    async def refresh(self, entries: list[PresenceEntry]) -> None:
        """Keep these connections present for another PRESENCE_TTL."""
        ...

    async def users(self, room_id: int) -> list[str]:
        """Sorted usernames present in the room."""
        ...

    async def expire(self, room_ids: list[int]) -> list[int]:
        """Drop these rooms' expired entries; the rooms that had some."""
        ...

    async def rooms(self) -> list[int]:
        """Rooms that had someone present (to expire their entries)."""
        ...


def _member(conn_id: str, username: str) -> str:
    return f"{conn_id}\x1f{username}"


def _username(member: str) -> str:
    return member.split("\x1f", 1)[1]


class RedisPresence:
    """Per room a sorted set of `conn\\x1fusername` scored by expiry; a global set of rooms."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def _key(self, room_id: int) -> str:
        return self.store.room_key(room_id, "presence")

    def _rooms_key(self) -> str:
        return self.store.key("presence-rooms")

    async def join(self, room_id: int, conn_id: str, username: str) -> tuple[list[str], bool]:
        # One round trip (issue 15): the entry and the room's live entries after it, in one
        # transaction, so two tabs of one person joining at once see each other.
        now = time.time()
        key = self._key(room_id)
        async with self.store.for_room(room_id).pipeline(transaction=True) as pipe:
            pipe.zadd(key, {_member(conn_id, username): now + presence_ttl()})
            pipe.zrangebyscore(key, now, "+inf")
            results, _ = await asyncio.gather(
                pipe.execute(), self.store.for_global().sadd(self._rooms_key(), room_id)
            )
        names = [_username(m) for m in cast(list[str], results[1])]
        return sorted(set(names)), names.count(username) == 1

    async def leave(self, room_id: int, conn_id: str) -> None:
        client = self.store.for_room(room_id)
        members = cast(list[str], await client.zrange(self._key(room_id), 0, -1))
        gone = [m for m in members if m.startswith(conn_id + "\x1f")]
        if gone:
            await client.zrem(self._key(room_id), *gone)

    async def refresh(self, entries: list[PresenceEntry]) -> None:
        if not entries:
            return
        expires = time.time() + presence_ttl()
        by_client: dict[int, tuple[aioredis.Redis, list[PresenceEntry]]] = {}
        for entry in entries:
            client = self.store.for_room(entry[0])
            by_client.setdefault(id(client), (client, []))[1].append(entry)
        for client, group in by_client.values():
            # One ZADD per room with all of its members: building a command costs redis-py far
            # more than a member does, and per socket this was most of an idle process's CPU.
            members: dict[int, dict[str, float]] = {}
            for room_id, conn_id, username in group:
                members.setdefault(room_id, {})[_member(conn_id, username)] = expires
            async with client.pipeline(transaction=False) as pipe:
                for room_id, room_members in members.items():
                    pipe.zadd(self._key(room_id), room_members)
                await pipe.execute()
        await self.store.for_global().sadd(self._rooms_key(), *{e[0] for e in entries})

    async def users(self, room_id: int) -> list[str]:
        client = self.store.for_room(room_id)
        members = cast(
            list[str], await client.zrangebyscore(self._key(room_id), time.time(), "+inf")
        )
        return sorted({_username(m) for m in members})

    async def expire(self, room_ids: list[int]) -> list[int]:
        now = time.time()
        by_client: dict[int, tuple[aioredis.Redis, list[int]]] = {}
        for room_id in room_ids:
            client = self.store.for_room(room_id)
            by_client.setdefault(id(client), (client, []))[1].append(room_id)
        dropped: list[int] = []
        for client, rooms in by_client.values():
            async with client.pipeline(transaction=False) as pipe:  # one round trip per server
                for room_id in rooms:
                    pipe.zremrangebyscore(self._key(room_id), "-inf", now)
                counts = await pipe.execute()
            dropped += [room_id for room_id, count in zip(rooms, counts, strict=True) if count]
        return dropped

    async def rooms(self) -> list[int]:
        return [int(r) for r in await self.store.for_global().smembers(self._rooms_key())]


class MemoryPresence:
    """The same inside one process."""

    def __init__(self) -> None:
        self.entries: dict[int, dict[str, tuple[str, float]]] = {}  # room -> conn -> (name, expiry)

    async def join(self, room_id: int, conn_id: str, username: str) -> tuple[list[str], bool]:
        new = username not in await self.users(room_id)
        self._add(room_id, conn_id, username)
        return await self.users(room_id), new

    def _add(self, room_id: int, conn_id: str, username: str) -> None:
        expires = time.monotonic() + presence_ttl()
        self.entries.setdefault(room_id, {})[conn_id] = (username, expires)

    async def leave(self, room_id: int, conn_id: str) -> None:
        self.entries.get(room_id, {}).pop(conn_id, None)

    async def refresh(self, entries: list[PresenceEntry]) -> None:
        for room_id, conn_id, username in entries:
            self._add(room_id, conn_id, username)

    async def users(self, room_id: int) -> list[str]:
        now = time.monotonic()
        conns = self.entries.get(room_id, {})
        return sorted({name for name, expires in conns.values() if expires > now})

    async def expire(self, room_ids: list[int]) -> list[int]:
        now = time.monotonic()
        dropped = []
        for room_id in room_ids:
            conns = self.entries.get(room_id, {})
            gone = [c for c, (_, expires) in conns.items() if expires <= now]
            for conn_id in gone:
                del conns[conn_id]
            if gone:
                dropped.append(room_id)
        return dropped

    async def rooms(self) -> list[int]:
        return list(self.entries)
