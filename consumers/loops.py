"""The process's background loops: each job runs every so many seconds until the process stops;
a failure is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Loop:
    job: Job
    every: float  # seconds between the end of one run and the start of the next
    first_after: float = 0.0  # seconds before the first run


class BackgroundLoops:
    """Jobs added with `every`, started together on the running event loop, stopped together."""

    def __init__(self, quiet: Callable[[], bool] = lambda: False) -> None:
        # While `quiet()` (Redis is known to be down, said once already) failures log at DEBUG.
        self.quiet = quiet
        self.loops: list[Loop] = []
        self.tasks: list[asyncio.Task[None]] = []

    def every(self, seconds: float, job: Job, first_after: float = 0.0) -> None:
        """Run `job` every `seconds` once started (a job added after `start` starts at once)."""
        loop = Loop(job, seconds, first_after)
        self.loops.append(loop)
        if self.tasks:
            self.tasks.append(asyncio.get_running_loop().create_task(self._run(loop)))

    @property
    def running(self) -> bool:
        return bool(self.tasks)

    def start(self) -> None:
        """Start every loop on the running event loop (once)."""
        if self.tasks:
            return
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._run(each)) for each in self.loops]

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks = []

    async def _run(self, loop: Loop) -> None:
        await asyncio.sleep(loop.first_after)
        while True:
            try:
                await loop.job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.DEBUG if self.quiet() else logging.WARNING
                name = getattr(loop.job, "__name__", repr(loop.job))
                log.log(level, "%s failed: %s: %s", name, type(exc).__name__, exc)
            await asyncio.sleep(loop.every)
