"""Fresh reads shared by everyone who asked before they started.

When a crowd of tabs opens a room at once (a reconnect storm after a restart, a class joining),
each needs the room and its snapshot, read after it subscribed to the room's frames. Reading
once per tab queues thousands of identical database reads behind the process's one database
thread. `FreshReads` runs at most one read per key at a time: callers that arrive while one
runs wait for the next, which starts when it ends and serves all of them. Every caller thus
gets a result read entirely after it asked, as if it had read alone (what snapshot exactness
needs), and a storm costs about one read per key per read-time instead of one per tab.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FreshReads(Generic[K, V]):
    """Coalesces `read(key)` calls; see the module's docstring. Results are shared: callers
    must not change them."""

    def __init__(self, read: Callable[[K], Coroutine[Any, Any, V]]) -> None:
        self._read = read
        self._running: dict[K, asyncio.Task[V]] = {}
        self._waiting: dict[K, asyncio.Future[V]] = {}  # callers for the next read, by key
        self.reads = 0  # reads started (for tests and benchmarks)

    async def get(self, key: K) -> V:
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
            if key not in self._running:
                self._start(key)
        # Shielded: one caller giving up (its socket closed) does not cancel the others' read.
        return await asyncio.shield(future)

    def _start(self, key: K) -> None:
        future = self._waiting.pop(key)
        task: asyncio.Task[V] = asyncio.get_running_loop().create_task(self._read(key))
        self._running[key] = task
        self.reads += 1

        def done(finished: asyncio.Task[V]) -> None:
            del self._running[key]
            if not future.done():
                if finished.cancelled():
                    future.cancel()
                elif (exc := finished.exception()) is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(finished.result())
            if key in self._waiting:
                self._start(key)

        task.add_done_callback(done)
