"""Limits on sockets (SPEC §6 `4429`): at most CHAT_MAX_SOCKETS_PER_USER open sockets per user
across processes, and a socket that keeps flooding after `rate_limited` errors is closed.

The count lives in Redis: one sorted set per user, each member a socket id scored with the
moment its claim expires (Redis' own clock). Every process renews the claims of its open
sockets every SOCKET_QUOTA_TTL / 3 seconds, so the sockets of a process that was killed stop
counting within SOCKET_QUOTA_TTL. Without REDIS_URL (one process) the count is in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from django.conf import settings

from . import protocol
from .state import RedisStore, shared_state

log = logging.getLogger(__name__)

# KEYS[1] the user's set. ARGV: socket id, limit (0: none), ttl ms. Drops expired claims, then
# admits the socket (1) unless the user already holds `limit` (0).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
   and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1
"""
# KEYS[1] the user's set. ARGV: ttl ms, then socket ids: renew the claims still present.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 1
"""


def _store() -> RedisStore | None:
    """The shared state's Redis (per-user state lives on the first server), or None when the
    state is this process's memory (no REDIS_URL)."""
    return shared_state().redis


def _key(store: RedisStore, user_id: int) -> str:
    return store.key("sockets", user_id)


class SocketQuota:
    """This process's open sockets per user, and their claims in the shared count."""

    def __init__(self) -> None:
        self.held: dict[int, set[str]] = {}  # user id → this process's socket ids
        self._renewer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # whose sockets `held` counts

    async def admit(self, user_id: int, conn_id: str) -> int | None:
        """Claim a slot for this socket: None when admitted, else the close code (4429 over
        the limit, 1013 when the count cannot be read: refused, never let through)."""
        limit = settings.CHAT_MAX_SOCKETS_PER_USER
        self._forget_other_loop()
        store = _store()
        if store is None:
            mine = self.held.get(user_id, set())
            if limit and len(mine) >= limit:
                return protocol.CLOSE_TOO_MANY
            self.held.setdefault(user_id, set()).add(conn_id)
            return None
        ttl_ms = int(settings.SOCKET_QUOTA_TTL * 1000)
        try:
            keys = [_key(store, user_id)]
            admitted = await store.run(store.for_global(), _ADMIT, keys, conn_id, limit, ttl_ms)
        except Exception as exc:
            log.warning("socket count unavailable, refusing for now: %s", exc)
            return protocol.CLOSE_TRY_AGAIN
        if not admitted:
            return protocol.CLOSE_TOO_MANY
        self.held.setdefault(user_id, set()).add(conn_id)
        self._ensure_renewer()
        return None

    async def release(self, user_id: int, conn_id: str) -> None:
        """Give the socket's slot back (idempotent)."""
        mine = self.held.get(user_id)
        if mine is None or conn_id not in mine:
            return
        mine.discard(conn_id)
        if not mine:
            del self.held[user_id]
        store = _store()
        if store is None:
            return
        try:
            await store.for_global().zrem(_key(store, user_id), conn_id)
        except Exception as exc:  # the claim expires with the missing renewals
            log.info("socket count release failed: %s", exc)

    async def renew(self) -> None:
        """Renew the claims of this process's open sockets."""
        store = _store()
        if store is None or not self.held:
            return
        ttl_ms = int(settings.SOCKET_QUOTA_TTL * 1000)
        # Every user's renewal in one round trip (the pipeline loads the script if needed).
        async with store.for_global().pipeline(transaction=False) as pipe:
            for user_id, conn_ids in list(self.held.items()):
                if conn_ids:
                    keys = [_key(store, user_id)]
                    await store.run(pipe, _RENEW, keys, ttl_ms, *sorted(conn_ids))
            await pipe.execute()

    def _forget_other_loop(self) -> None:
        """A process serves its sockets from one event loop; a new loop (in-process tests run
        one per case) starts with none held."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.held.clear()
            self._loop = loop

    def _ensure_renewer(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._renewer
        if task is None or task.done() or task.get_loop() is not loop:
            self._renewer = loop.create_task(self._renew_forever(), name="socket quota renewer")

    async def _renew_forever(self) -> None:
        while self.held:
            await asyncio.sleep(settings.SOCKET_QUOTA_TTL / 3)
            try:
                await self.renew()
            except Exception as exc:  # Redis away: try again next round
                log.warning("socket count renewal failed: %s", exc)


_quota: SocketQuota | None = None


def socket_quota() -> SocketQuota:
    """This process's socket quota."""
    global _quota
    if _quota is None:
        _quota = SocketQuota()
    return _quota


async def admit(user_id: int, conn_id: str) -> int | None:
    return await socket_quota().admit(user_id, conn_id)


async def release(user_id: int, conn_id: str) -> None:
    await socket_quota().release(user_id, conn_id)


class FloodGuard:
    """One socket's `rate_limited` refusals: too many within the window ends the socket."""

    def __init__(self, refusals: int | None = None, window: float | None = None) -> None:
        self.refusals = refusals or settings.FLOOD_REFUSALS
        self.window = window or settings.FLOOD_WINDOW
        self.times: deque[float] = deque()

    def refused(self, code: str, now: float | None = None) -> bool:
        """Record an `error` sent to the socket; True when it must now close with 4429."""
        if code != "rate_limited":
            return False
        now = time.monotonic() if now is None else now
        self.times.append(now)
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        return len(self.times) >= self.refusals
