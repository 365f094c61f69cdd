"""The circuit breaker's state, shared by every process: consecutive failed replies, whether
the circuit is open, and the one probe let through after the cool-down. When to ask and what
to tell it: `consumers.breaker`."""

from __future__ import annotations

import time
from typing import Protocol

from .store import RedisStore


class BreakerState(Protocol):
    async def allows(self, cooldown: float) -> bool:
        """Whether a reply may call the model: closed, or the one probe after the cool-down."""
        ...

    async def record(self, success: bool, threshold: int, cooldown: float) -> bool:
        """Count how a reply ended; True when this failure opened the circuit."""
        ...


class RedisBreakerState:
    """Keys `<prefix>:breaker:{failures,open_until,probe}`."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    async def allows(self, cooldown: float) -> bool:
        client = self.store.for_global()
        open_until = await client.get(self.store.key("breaker", "open_until"))
        if open_until is None:
            return True
        if time.time() < float(open_until):
            return False
        # Cool-down over: let exactly one probe through, across processes.
        probe = self.store.key("breaker", "probe")
        return bool(await client.set(probe, 1, nx=True, px=int(cooldown * 1000)))

    async def record(self, success: bool, threshold: int, cooldown: float) -> bool:
        client = self.store.for_global()
        failures = self.store.key("breaker", "failures")
        open_until = self.store.key("breaker", "open_until")
        probe = self.store.key("breaker", "probe")
        if success:
            await client.delete(failures, open_until, probe)
            return False
        count = int(await client.incr(failures))
        # "Consecutive" within a few minutes: old failures must not add up with new ones.
        await client.expire(failures, int(max(cooldown * 10, 60)))
        if count < threshold:
            return False
        # Reached or past the threshold (a failed probe lands here too): open (again).
        await client.set(open_until, time.time() + cooldown, ex=max(1, int(cooldown * 10)))
        await client.delete(probe)
        return True


class MemoryBreakerState:
    """The same inside one process."""

    def __init__(self) -> None:
        self.failures = 0
        self.open_until: float | None = None  # time.monotonic()
        self.probe_until = 0.0

    async def allows(self, cooldown: float) -> bool:
        if self.open_until is None:
            return True
        now = time.monotonic()
        if now < self.open_until or now < self.probe_until:
            return False
        self.probe_until = now + cooldown
        return True

    async def record(self, success: bool, threshold: int, cooldown: float) -> bool:
        if success:
            self.failures = 0
            self.open_until = None
            self.probe_until = 0.0
            return False
        self.failures += 1
        if self.failures < threshold:
            return False
        self.open_until = time.monotonic() + cooldown
        self.probe_until = 0.0
        return True
