"""The running reply of each room as tabs must see it (text of deltas 1..seq, for exact
snapshots), and stop requests, seen by whichever process runs the reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .store import RedisStore

# Live reply keys outlive a dead process long enough for the reaper to read the partial text.
LIVE_TTL = 3600


@dataclass(frozen=True)
class LiveText:
    """A room's running reply: the text of its deltas 1..seq."""

    message_id: int
    seq: int
    text: str


class LiveTexts(Protocol):
    async def start(self, room_id: int, message_id: int) -> None:
        """A new reply runs in the room: no text yet (seq 0)."""
        ...

    async def append(
        self, room_id: int, message_id: int, seq: int, text: str, full_text: str | None
    ) -> bool:
        """Record delta `seq`; False when the state was lost (then `full_text` rebuilds it) or
        belongs to another reply (then nothing is written)."""
        ...

    async def get(self, room_id: int) -> LiveText | None: ...
    async def clear(self, room_id: int, message_id: int) -> None: ...
    async def request_stop(self, room_id: int, message_id: int) -> None: ...
    async def stop_requested(self, room_id: int, message_id: int) -> bool: ...


# The text key and the seq change together, so a snapshot is always exact; a reply reaped
# elsewhere never writes into the next reply's state.
_APPEND = """
if redis.call('HGET', KEYS[1], 'message_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2])
redis.call('APPEND', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""
# The whole text again (Redis restarted, or an append failed), unless another reply took over.
_REBUILD = """
local current = redis.call('HGET', KEYS[1], 'message_id')
if current and current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'message_id', ARGV[1], 'seq', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
_CLEAR = """
if redis.call('HGET', KEYS[1], 'message_id') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 1
"""


class RedisLiveTexts:
    """Per room: a hash `gen` (message_id, seq) and a string `text`; stop flags `stop:<id>`."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def _keys(self, room_id: int) -> list[str]:
        return [self.store.room_key(room_id, "gen"), self.store.room_key(room_id, "text")]

    async def start(self, room_id: int, message_id: int) -> None:
        gen, text = self._keys(room_id)
        async with self.store.for_room(room_id).pipeline(transaction=True) as pipe:
            pipe.delete(gen, text)
            pipe.hset(gen, mapping={"message_id": message_id, "seq": 0})
            pipe.set(text, "", ex=LIVE_TTL)
            pipe.expire(gen, LIVE_TTL)
            await pipe.execute()

    async def append(
        self, room_id: int, message_id: int, seq: int, text: str, full_text: str | None
    ) -> bool:
        # The whole text crosses the wire only to rebuild lost state (`full_text` given).
        client, keys = self.store.for_room(room_id), self._keys(room_id)
        if full_text is None:
            done = await self.store.run(client, _APPEND, keys, message_id, seq, text, LIVE_TTL)
        else:
            done = await self.store.run(
                client, _REBUILD, keys, message_id, seq, full_text, LIVE_TTL
            )
        return bool(done)

    async def get(self, room_id: int) -> LiveText | None:
        gen, text = self._keys(room_id)
        async with self.store.for_room(room_id).pipeline(transaction=True) as pipe:
            pipe.hgetall(gen)
            pipe.get(text)
            fields, live_text = await pipe.execute()
        if not fields or "message_id" not in fields:
            return None
        return LiveText(int(fields["message_id"]), int(fields.get("seq", 0)), live_text or "")

    async def clear(self, room_id: int, message_id: int) -> None:
        await self.store.run(self.store.for_room(room_id), _CLEAR, self._keys(room_id), message_id)

    def _stop_key(self, room_id: int, message_id: int) -> str:
        return self.store.room_key(room_id, "stop", message_id)

    async def request_stop(self, room_id: int, message_id: int) -> None:
        client = self.store.for_room(room_id)
        await client.set(self._stop_key(room_id, message_id), 1, ex=LIVE_TTL)

    async def stop_requested(self, room_id: int, message_id: int) -> bool:
        client = self.store.for_room(room_id)
        return bool(await client.exists(self._stop_key(room_id, message_id)))


class MemoryLiveTexts:
    """The same inside one process."""

    def __init__(self) -> None:
        self.texts: dict[int, LiveText] = {}
        self.stops: set[tuple[int, int]] = set()

    async def start(self, room_id: int, message_id: int) -> None:
        self.texts[room_id] = LiveText(message_id, 0, "")

    async def append(
        self, room_id: int, message_id: int, seq: int, text: str, full_text: str | None
    ) -> bool:
        current = self.texts.get(room_id)
        if current is not None and current.message_id != message_id:
            return False  # another reply's state: never overwritten
        if full_text is not None:
            self.texts[room_id] = LiveText(message_id, seq, full_text)
        elif current is None:
            return False
        else:
            self.texts[room_id] = LiveText(message_id, seq, current.text + text)
        return True

    async def get(self, room_id: int) -> LiveText | None:
        return self.texts.get(room_id)

    async def clear(self, room_id: int, message_id: int) -> None:
        current = self.texts.get(room_id)
        if current is not None and current.message_id == message_id:
            del self.texts[room_id]
        self.stops.discard((room_id, message_id))

    async def request_stop(self, room_id: int, message_id: int) -> None:
        self.stops.add((room_id, message_id))

    async def stop_requested(self, room_id: int, message_id: int) -> bool:
        return (room_id, message_id) in self.stops
