"""State shared by all processes of a room: the reply lock, live text + seq, stop flags,
presence, rate limits and the circuit breaker.

Two implementations of one interface: Redis (any number of processes) and memory (the one
process `make run` starts without REDIS_URL). Every guarantee holds within either.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis.asyncio as aioredis

# Live reply keys outlive a dead process long enough for the reaper to read the partial text.
LIVE_TTL = 3600
PRESENCE_TTL = 30.0  # a connection not refreshed for this long is gone (its process died)


@dataclass(frozen=True)
class LiveGeneration:
    """The running reply of a room as tabs must see it: text of deltas 1..seq."""

    message_id: int
    seq: int
    text: str
    model: str


class SharedState(Protocol):
    """What the reply runner, the consumers and the reaper share across processes."""

    async def ping(self) -> None: ...

    # The room's reply lock: one reply per room at a time, across processes.
    async def acquire_room(self, room_id: int, token: str, ttl: float) -> bool: ...
    async def renew_room(self, room_id: int, token: str, ttl: float) -> bool: ...
    async def release_room(self, room_id: int, token: str) -> None: ...
    async def room_locked(self, room_id: int) -> bool: ...

    # The room's summary lock: one background summarizer per room, across processes.
    async def acquire_summary(self, room_id: int, token: str, ttl: float) -> bool: ...
    async def release_summary(self, room_id: int, token: str) -> None: ...

    # The running reply's text so far, for exact snapshots.
    async def start_generation(self, room_id: int, message_id: int, model: str) -> None: ...
    async def append_generation(
        self, room_id: int, message_id: int, seq: int, text: str, full_text: str | None
    ) -> bool:
        """Record delta `seq`; False when the state was lost (then `full_text` rebuilds it) or
        belongs to another reply (then nothing is written)."""
        ...

    async def get_generation(self, room_id: int) -> LiveGeneration | None: ...
    async def clear_generation(self, room_id: int, message_id: int) -> None: ...

    # Stop requests, seen by whichever process runs the reply.
    async def request_stop(self, room_id: int, message_id: int) -> None: ...
    async def stop_requested(self, room_id: int, message_id: int) -> bool: ...

    # Who is connected to a room, on any process.
    async def presence_join(self, room_id: int, conn_id: str, username: str) -> None: ...
    async def presence_leave(self, room_id: int, conn_id: str) -> None: ...
    async def presence_refresh(self, entries: list[tuple[int, str, str]]) -> None: ...
    async def presence_users(self, room_id: int) -> list[str]: ...
    async def presence_expire(self, room_id: int) -> int: ...
    async def presence_rooms(self) -> list[int]: ...

    # Messages one user may send per minute, across processes: seconds to wait, or None.
    async def rate_limit_hit(self, user_id: int, limit: int, window: float) -> float | None: ...

    # The circuit breaker around the model, shared by every process. `breaker_allows` is asked
    # once per reply before its first attempt; `breaker_record` hears once per reply how it
    # ended (see docs/operations.md) and returns True when that failure opened the circuit.
    async def breaker_allows(self, cooldown: float) -> bool: ...
    async def breaker_record(self, success: bool, threshold: int, cooldown: float) -> bool: ...


def _member(conn_id: str, username: str) -> str:
    return f"{conn_id}\x1f{username}"


def _username(member: str) -> str:
    return member.split("\x1f", 1)[1]


# --- Redis ---------------------------------------------------------------------------------

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
# Append a batch: the text key and the seq change together, so a snapshot is always exact.
# When the hash is missing (Redis restarted) or a previous append failed, the full text is set,
# unless the hash belongs to another reply: a reply reaped elsewhere must not overwrite the next.
_APPEND = """
if ARGV[4] == '1' then
  local current = redis.call('HGET', KEYS[1], 'message_id')
  if current and current ~= ARGV[1] then return 0 end
  redis.call('HSET', KEYS[1], 'message_id', ARGV[1], 'seq', ARGV[2], 'model', ARGV[5])
  redis.call('SET', KEYS[2], ARGV[6])
elseif redis.call('HGET', KEYS[1], 'message_id') ~= ARGV[1] then
  return 0
else
  redis.call('HSET', KEYS[1], 'seq', ARGV[2])
  redis.call('APPEND', KEYS[2], ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[7])
return 1
"""
_CLEAR = """
if redis.call('HGET', KEYS[1], 'message_id') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 1
"""
_RATE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return ttl
end
return -1
"""


class RedisState:
    """Shared state in Redis; one client per event loop (a connection pool belongs to one loop)."""

    def __init__(self, url: str, prefix: str, options: dict[str, Any]) -> None:
        self.url = url
        self.prefix = prefix  # every key starts with it
        self.options = options  # passed to redis-py (timeouts, TLS)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self.model_by_message: dict[int, str] = {}

    def redis(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self.url, decode_responses=True, **self.options)
            self._clients[loop] = client
        return client

    def key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    async def ping(self) -> None:
        await self.redis().ping()

    async def acquire_room(self, room_id: int, token: str, ttl: float) -> bool:
        key = self.key("room", room_id, "lock")
        return bool(await self.redis().set(key, token, nx=True, px=int(ttl * 1000)))

    async def renew_room(self, room_id: int, token: str, ttl: float) -> bool:
        key = self.key("room", room_id, "lock")
        return bool(await self.redis().eval(_RENEW, 1, key, token, int(ttl * 1000)))

    async def release_room(self, room_id: int, token: str) -> None:
        await self.redis().eval(_RELEASE, 1, self.key("room", room_id, "lock"), token)

    async def room_locked(self, room_id: int) -> bool:
        return bool(await self.redis().exists(self.key("room", room_id, "lock")))

    async def acquire_summary(self, room_id: int, token: str, ttl: float) -> bool:
        key = self.key("room", room_id, "summary-lock")
        return bool(await self.redis().set(key, token, nx=True, px=int(ttl * 1000)))

    async def release_summary(self, room_id: int, token: str) -> None:
        await self.redis().eval(_RELEASE, 1, self.key("room", room_id, "summary-lock"), token)

    async def start_generation(self, room_id: int, message_id: int, model: str) -> None:
        gen, text = self.key("room", room_id, "gen"), self.key("room", room_id, "text")
        async with self.redis().pipeline(transaction=True) as pipe:
            pipe.delete(gen, text)
            pipe.hset(gen, mapping={"message_id": message_id, "seq": 0, "model": model})
            pipe.set(text, "", ex=LIVE_TTL)
            pipe.expire(gen, LIVE_TTL)
            await pipe.execute()
        self.model_by_message[message_id] = model

    async def append_generation(
        self, room_id: int, message_id: int, seq: int, text: str, full_text: str | None
    ) -> bool:
        # The whole text crosses the wire only to rebuild lost state (`full_text` given).
        keys = (self.key("room", room_id, "gen"), self.key("room", room_id, "text"))
        rebuild = "0" if full_text is None else "1"
        model = self.model_by_message.get(message_id, "")
        done = await self.redis().eval(
            _APPEND, 2, *keys, message_id, seq, text, rebuild, model, full_text or "", LIVE_TTL
        )
        return bool(done)

    async def get_generation(self, room_id: int) -> LiveGeneration | None:
        gen, text = self.key("room", room_id, "gen"), self.key("room", room_id, "text")
        async with self.redis().pipeline(transaction=True) as pipe:
            pipe.hgetall(gen)
            pipe.get(text)
            fields, live_text = await pipe.execute()
        if not fields or "message_id" not in fields:
            return None
        return LiveGeneration(
            message_id=int(fields["message_id"]),
            seq=int(fields.get("seq", 0)),
            text=live_text or "",
            model=fields.get("model", ""),
        )

    async def clear_generation(self, room_id: int, message_id: int) -> None:
        keys = (self.key("room", room_id, "gen"), self.key("room", room_id, "text"))
        await self.redis().eval(_CLEAR, 2, *keys, message_id)
        self.model_by_message.pop(message_id, None)

    async def request_stop(self, room_id: int, message_id: int) -> None:
        await self.redis().set(self.key("room", room_id, "stop", message_id), 1, ex=LIVE_TTL)

    async def stop_requested(self, room_id: int, message_id: int) -> bool:
        return bool(await self.redis().exists(self.key("room", room_id, "stop", message_id)))

    async def presence_join(self, room_id: int, conn_id: str, username: str) -> None:
        key = self.key("room", room_id, "presence")
        await self.redis().zadd(key, {_member(conn_id, username): time.time() + PRESENCE_TTL})
        await self.redis().sadd(self.key("presence-rooms"), room_id)

    async def presence_leave(self, room_id: int, conn_id: str) -> None:
        key = self.key("room", room_id, "presence")
        members = cast(list[str], await self.redis().zrange(key, 0, -1))  # decode_responses
        gone = [m for m in members if m.startswith(conn_id + "\x1f")]
        if gone:
            await self.redis().zrem(key, *gone)

    async def presence_refresh(self, entries: list[tuple[int, str, str]]) -> None:
        if not entries:
            return
        expires = time.time() + PRESENCE_TTL
        async with self.redis().pipeline(transaction=False) as pipe:
            for room_id, conn_id, username in entries:
                key = self.key("room", room_id, "presence")
                pipe.zadd(key, {_member(conn_id, username): expires})
                pipe.sadd(self.key("presence-rooms"), room_id)
            await pipe.execute()

    async def presence_users(self, room_id: int) -> list[str]:
        key = self.key("room", room_id, "presence")
        members = cast(list[str], await self.redis().zrangebyscore(key, time.time(), "+inf"))
        return sorted({_username(m) for m in members})

    async def presence_expire(self, room_id: int) -> int:
        key = self.key("room", room_id, "presence")
        return int(await self.redis().zremrangebyscore(key, "-inf", time.time()))

    async def presence_rooms(self) -> list[int]:
        return [int(r) for r in await self.redis().smembers(self.key("presence-rooms"))]

    async def rate_limit_hit(self, user_id: int, limit: int, window: float) -> float | None:
        key = self.key("rate", user_id)
        ttl_ms = int(await self.redis().eval(_RATE, 1, key, limit, int(window * 1000)))
        return None if ttl_ms < 0 else max(0.001, ttl_ms / 1000)

    async def breaker_allows(self, cooldown: float) -> bool:
        open_until = await self.redis().get(self.key("breaker", "open_until"))
        if open_until is None:
            return True
        if time.time() < float(open_until):
            return False
        # Cool-down over: let exactly one probe through, across processes.
        probe = self.key("breaker", "probe")
        return bool(await self.redis().set(probe, 1, nx=True, px=int(cooldown * 1000)))

    async def breaker_record(self, success: bool, threshold: int, cooldown: float) -> bool:
        failures = self.key("breaker", "failures")
        if success:
            await self.redis().delete(
                failures, self.key("breaker", "open_until"), self.key("breaker", "probe")
            )
            return False
        count = int(await self.redis().incr(failures))
        # "Consecutive" within a few minutes: old failures must not add up with new ones.
        await self.redis().expire(failures, int(max(cooldown * 10, 60)))
        if count < threshold:
            return False
        # Reached or past the threshold (a failed probe lands here too): open (again).
        until = time.time() + cooldown
        await self.redis().set(
            self.key("breaker", "open_until"), until, ex=max(1, int(cooldown * 10))
        )
        await self.redis().delete(self.key("breaker", "probe"))
        return True


# --- memory (one process) ------------------------------------------------------------------


@dataclass
class _Lock:
    token: str
    expires: float


class MemoryState:
    """The same state inside one process, for running without Redis."""

    def __init__(self) -> None:
        self.locks: dict[int, _Lock] = {}
        self.summary_locks: dict[int, _Lock] = {}
        self.generations: dict[int, LiveGeneration] = {}
        self.stops: set[tuple[int, int]] = set()
        self.presence: dict[int, dict[str, tuple[str, float]]] = {}
        self.rates: dict[int, tuple[int, float]] = {}
        self.breaker_failures = 0
        self.breaker_open_until: float | None = None
        self.breaker_probe_until = 0.0

    async def ping(self) -> None:
        return None

    def _held(self, room_id: int) -> _Lock | None:
        lock = self.locks.get(room_id)
        if lock is not None and lock.expires <= time.monotonic():
            del self.locks[room_id]
            return None
        return lock

    async def acquire_room(self, room_id: int, token: str, ttl: float) -> bool:
        if self._held(room_id) is not None:
            return False
        self.locks[room_id] = _Lock(token, time.monotonic() + ttl)
        return True

    async def renew_room(self, room_id: int, token: str, ttl: float) -> bool:
        lock = self._held(room_id)
        if lock is not None and lock.token != token:
            return False
        self.locks[room_id] = _Lock(token, time.monotonic() + ttl)
        return True

    async def release_room(self, room_id: int, token: str) -> None:
        lock = self._held(room_id)
        if lock is not None and lock.token == token:
            del self.locks[room_id]

    async def room_locked(self, room_id: int) -> bool:
        return self._held(room_id) is not None

    async def acquire_summary(self, room_id: int, token: str, ttl: float) -> bool:
        lock = self.summary_locks.get(room_id)
        if lock is not None and lock.expires > time.monotonic():
            return False
        self.summary_locks[room_id] = _Lock(token, time.monotonic() + ttl)
        return True

    async def release_summary(self, room_id: int, token: str) -> None:
        lock = self.summary_locks.get(room_id)
        if lock is not None and lock.token == token:
            del self.summary_locks[room_id]

    async def start_generation(self, room_id: int, message_id: int, model: str) -> None:
        self.generations[room_id] = LiveGeneration(message_id, 0, "", model)

    async def append_generation(
        self, room_id: int, message_id: int, seq: int, text: str, full_text: str | None
    ) -> bool:
        current = self.generations.get(room_id)
        model = current.model if current else ""
        if current is not None and current.message_id != message_id:
            return False  # another reply's state: never overwritten
        if full_text is not None:
            self.generations[room_id] = LiveGeneration(message_id, seq, full_text, model)
        elif current is None or current.message_id != message_id:
            return False
        else:
            self.generations[room_id] = LiveGeneration(message_id, seq, current.text + text, model)
        return True

    async def get_generation(self, room_id: int) -> LiveGeneration | None:
        return self.generations.get(room_id)

    async def clear_generation(self, room_id: int, message_id: int) -> None:
        current = self.generations.get(room_id)
        if current is not None and current.message_id == message_id:
            del self.generations[room_id]
        self.stops.discard((room_id, message_id))

    async def request_stop(self, room_id: int, message_id: int) -> None:
        self.stops.add((room_id, message_id))

    async def stop_requested(self, room_id: int, message_id: int) -> bool:
        return (room_id, message_id) in self.stops

    async def presence_join(self, room_id: int, conn_id: str, username: str) -> None:
        expires = time.monotonic() + PRESENCE_TTL
        self.presence.setdefault(room_id, {})[conn_id] = (username, expires)

    async def presence_leave(self, room_id: int, conn_id: str) -> None:
        self.presence.get(room_id, {}).pop(conn_id, None)

    async def presence_refresh(self, entries: list[tuple[int, str, str]]) -> None:
        for room_id, conn_id, username in entries:
            await self.presence_join(room_id, conn_id, username)

    async def presence_users(self, room_id: int) -> list[str]:
        now = time.monotonic()
        conns = self.presence.get(room_id, {})
        return sorted({name for name, expires in conns.values() if expires > now})

    async def presence_expire(self, room_id: int) -> int:
        now = time.monotonic()
        conns = self.presence.get(room_id, {})
        gone = [c for c, (_, expires) in conns.items() if expires <= now]
        for conn_id in gone:
            del conns[conn_id]
        return len(gone)

    async def presence_rooms(self) -> list[int]:
        return list(self.presence)

    async def rate_limit_hit(self, user_id: int, limit: int, window: float) -> float | None:
        now = time.monotonic()
        count, reset_at = self.rates.get(user_id, (0, now + window))
        if reset_at <= now:
            count, reset_at = 0, now + window
        count += 1
        self.rates[user_id] = (count, reset_at)
        return None if count <= limit else max(0.001, reset_at - now)

    async def breaker_allows(self, cooldown: float) -> bool:
        if self.breaker_open_until is None:
            return True
        now = time.monotonic()
        if now < self.breaker_open_until:
            return False
        if now < self.breaker_probe_until:
            return False
        self.breaker_probe_until = now + cooldown
        return True

    async def breaker_record(self, success: bool, threshold: int, cooldown: float) -> bool:
        if success:
            self.breaker_failures = 0
            self.breaker_open_until = None
            self.breaker_probe_until = 0.0
            return False
        self.breaker_failures += 1
        if self.breaker_failures < threshold:
            return False
        self.breaker_open_until = time.monotonic() + cooldown
        self.breaker_probe_until = 0.0
        return True


_state: SharedState | None = None


def shared_state() -> SharedState:
    """This process's view of the shared state: Redis when REDIS_URL is set, else memory."""
    global _state
    if _state is None:
        from django.conf import settings

        if settings.REDIS_URL:
            _state = RedisState(
                settings.REDIS_URL, settings.REDIS_KEY_PREFIX, settings.REDIS_OPTIONS
            )
        else:
            _state = MemoryState()
    return _state


def reset_shared_state() -> None:
    """Forget the state object (tests switch settings between runs)."""
    global _state
    _state = None
